-- MySQL dump 10.13  Distrib 5.7.44, for Linux (x86_64)
--
-- Host: localhost    Database: quirks
-- ------------------------------------------------------
# A dump written by hand for Sluice's tests; this file is encoded in latin1.

/*!40101 SET @OLD_CHARACTER_SET_CLIENT=@@CHARACTER_SET_CLIENT */;
/*!40101 SET NAMES latin1 */;
/*!40103 SET @OLD_TIME_ZONE=@@TIME_ZONE */;
/*!40103 SET TIME_ZONE='+00:00' */;
/*!40014 SET @OLD_UNIQUE_CHECKS=@@UNIQUE_CHECKS, UNIQUE_CHECKS=0 */;
/*!40101 SET @OLD_SQL_MODE=@@SQL_MODE, SQL_MODE='NO_AUTO_VALUE_ON_ZERO' */;

CREATE DATABASE /*!32312 IF NOT EXISTS*/ `quirks` /*!40100 DEFAULT CHARACTER SET latin1 */;

USE `quirks`;

--
-- Table structure for table `shopLines`
--

DROP TABLE IF EXISTS `shopLines`;
/*!40101 SET @saved_cs_client     = @@character_set_client */;
/*!40101 SET character_set_client = utf8 */;
CREATE TABLE `shopLines` (
  `lineCode` varchar(20) NOT NULL,
  `lineName` varchar(100) CHARACTER SET latin1 COLLATE latin1_swedish_ci DEFAULT NULL COMMENT 'shown; to users',
  PRIMARY KEY (`lineCode`)
) ENGINE=InnoDB DEFAULT CHARSET=latin1;
/*!40101 SET character_set_client = @saved_cs_client */;

LOCK TABLES `shopLines` WRITE;
/*!40000 ALTER TABLE `shopLines` DISABLE KEYS */;
INSERT INTO `shopLines` VALUES ('L1','Mü'),('L2','Åbo; \'quoted\''),('L3',NULL);
/*!40000 ALTER TABLE `shopLines` ENABLE KEYS */;
UNLOCK TABLES;

--
-- Table structure for table `oddItems`
--

DROP TABLE IF EXISTS `oddItems`;
CREATE TABLE `oddItems` (
  `itemId` int(11) NOT NULL AUTO_INCREMENT,
  `lineCode` varchar(20) DEFAULT NULL,
  `label` varchar(200) DEFAULT NULL,
  `notes` mediumtext,
  `price` decimal(10,2) NOT NULL DEFAULT '0.00',
  `picture` mediumblob,
  `createdAt` datetime DEFAULT NULL,
  `shippedOn` date DEFAULT NULL,
  `ratio` double DEFAULT NULL,
  `stock` smallint(6) NOT NULL,
  PRIMARY KEY (`itemId`),
  KEY `lineCode` (`lineCode`),
  CONSTRAINT `oddItems_ibfk_1` FOREIGN KEY (`lineCode`) REFERENCES `shopLines` (`lineCode`) ON DELETE SET NULL
) ENGINE=InnoDB AUTO_INCREMENT=9 DEFAULT CHARSET=latin1 ROW_FORMAT=DYNAMIC;

LOCK TABLES `oddItems` WRITE;
/*!40000 ALTER TABLE `oddItems` DISABLE KEYS */;
INSERT INTO `oddItems` VALUES (1,'L1','O\'Brien''s "best"','C:\\temp\\new',0.10,0x00FF10,'2004-02-29 13:45:00','2004-03-01',1.5e3,7),(2,'L2','NULL',NULL,'1234567.89',_binary 'a\0b\'\\',NULL,NULL,-0.25,-3),(3,'L1','semi;colon -- not a comment # nor this /* nor this */','line1
line2; still the same string
line3',-5.00,X'DEADBEEF','2005-12-31 23:59:59',NULL,0,0);
INSERT INTO `oddItems` (`itemId`, `stock`, `price`, `label`, `notes`) VALUES
 (4, 12, 99999999.99, 'Mü', 'Åbo'),
 (5, 1, 0.01, '', 'tab\there\r\nctrl-z:\Z nul:\0 end'),
 (6, 2, 1.00, 'percent \% and under \_', 'back\\slash at end\\'),
 (7, 3, 2.50, 'ÿ and £ and ©', '/*!40101 not a version comment */');
/*!40000 ALTER TABLE `oddItems` ENABLE KEYS */;
UNLOCK TABLES;
/*!40103 SET TIME_ZONE=@OLD_TIME_ZONE */;

-- Dump completed on 2026-11-24 12:00:00
