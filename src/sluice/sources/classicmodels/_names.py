"""Word lists behind the ``classicmodels`` generator: places, people, companies, products.

Templates: ``#`` is a digit 0-9, ``%`` a digit 2-9 and ``@`` an uppercase letter.
"""

from __future__ import annotations

from typing import NamedTuple

# --- fixed reference rows -----------------------------------------------------------------

#: (productLine, textDescription) for the seven real product lines.
PRODUCT_LINES: tuple[tuple[str, str], ...] = (
    (
        "Classic Cars",
        "Attention car enthusiasts: make your wildest car ownership dreams come true. "
        "Whether you are looking for classic muscle cars, dream sports cars or movie-inspired "
        "miniatures, you will find great choices in this category. These replicas feature "
        "superb attention to detail and craftsmanship and offer opening doors, hoods and "
        "trunks, working steering and rubber tires.",
    ),
    (
        "Motorcycles",
        "Our motorcycles are state of the art replicas of classic as well as contemporary "
        "motorcycle legends such as Harley Davidson, Ducati and Vespa. Models contain stunning "
        "details such as official logos, rotating wheels, working kickstand, front suspension, "
        "gear-shift lever, footbrake lever and drive chain.",
    ),
    (
        "Planes",
        "Unique, diecast airplane and helicopter replicas suitable for collections, as well as "
        "home, office or classroom decorations. Models contain stunning details such as "
        "official logos and insignias, rotating jet engines and propellers, retractable wheels, "
        "and so on. Most come fully assembled and with a certificate of authenticity.",
    ),
    (
        "Ships",
        "The perfect holiday or anniversary gift for executives, clients, friends, and family. "
        "These handcrafted model ships are unique, stunning works of art that will be treasured "
        "for generations! They come fully assembled and ready for display in the home or office.",
    ),
    (
        "Trains",
        "Model trains are a rewarding hobby for enthusiasts of all ages. Whether you're looking "
        "for collectible wooden trains, electric streetcars or locomotives, you'll find a number "
        "of great choices for any budget within this category.",
    ),
    (
        "Trucks and Buses",
        "The Truck and Bus models are realistic replicas of buses and specialized trucks "
        "produced from the early 1920s to present. The models range in size from 1:12 to 1:50 "
        "scale and include numerous limited edition and several out-of-production vehicles.",
    ),
    (
        "Vintage Cars",
        "Our Vintage Car models realistically portray automobiles produced from the early 1900s "
        "through the 1940s. Materials used include Bakelite, diecast, plastic and wood. Most of "
        'the replicas are in the 1:18 and 1:24 scale sizes, which provide the "optimum" in '
        "detail and accuracy.",
    ),
)

#: The seven real offices, officeCode '1'..'7', in the order of the table's columns after
#: officeCode: city, phone, addressLine1, addressLine2, state, country, postalCode, territory.
OFFICES: tuple[tuple[str, str, str, str | None, str | None, str, str, str], ...] = (
    ("San Francisco", "+1 650 219 4782", "100 Market Street", "Suite 300", "CA", "USA", "94080",
     "NA"),
    ("Boston", "+1 215 837 0825", "1550 Court Place", "Suite 102", "MA", "USA", "02107", "NA"),
    ("NYC", "+1 212 555 3000", "523 East 53rd Street", "apt. 5A", "NY", "USA", "10022", "NA"),
    ("Paris", "+33 14 723 4404", "43 Rue Jouffroy D'abbans", None, None, "France", "75017", "EMEA"),
    ("Tokyo", "+81 33 224 5000", "4-1 Kioicho", None, "Chiyoda-Ku", "Japan", "102-8578", "Japan"),
    ("Sydney", "+61 2 9264 2451", "5-11 Wentworth Avenue", "Floor #2", None, "Australia",
     "NSW 2010", "APAC"),
    ("London", "+44 20 7877 2041", "25 Old Broad Street", "Level 7", None, "UK", "EC2N 1HN",
     "EMEA"),
)  # fmt: skip

#: Extra sales reps per office beyond the first one, as weights (Paris and Sydney are busiest).
OFFICE_REP_WEIGHTS: tuple[float, ...] = (1.0, 1.0, 1.0, 2.5, 0.6, 1.8, 1.0)

# --- customers ----------------------------------------------------------------------------


class Country(NamedTuple):
    """A customer country: its share of the original 122 customers and how it writes things."""

    name: str
    quota: int
    territory: str
    phones: tuple[str, ...]
    style: str  # address style: en, de, fr, es, it, no
    cities: tuple[tuple[str, str | None, str | None], ...]  # (city, state, postal template)


COUNTRIES: tuple[Country, ...] = (
    Country("USA", 36, "NA", ("%##555####", "%##.555.####"), "en", (
        ("San Francisco", "CA", "941##"), ("NYC", "NY", "100##"), ("Boston", "MA", "021##"),
        ("Los Angeles", "CA", "900##"), ("San Rafael", "CA", "97562"), ("Las Vegas", "NV", "83030"),
        ("Allentown", "PA", "70267"), ("Burlingame", "CA", "94217"), ("New Haven", "CT", "97823"),
        ("Cambridge", "MA", "51247"), ("Bridgewater", "CT", "97562"), ("Brickhaven", "MA", "58339"),
        ("Pasadena", "CA", "90003"), ("Glendale", "CA", "92561"), ("San Diego", "CA", "91217"),
        ("White Plains", "NY", "24067"), ("New Bedford", "MA", "50553"),
        ("Philadelphia", "PA", "71270"), ("Burbank", "CA", "94019"), ("Nashua", "NH", "62005"),
        ("Brisbane", "CA", "94217"), ("Stamford", "CT", "71270"),
    )),
    Country("Germany", 13, "EMEA", ("+49 69 66 90 ####", "0921-12 ####", "0241-## ####"), "de", (
        ("Frankfurt", None, "60528"), ("Berlin", None, "12209"), ("München", None, "80686"),
        ("Köln", None, "50739"), ("Stuttgart", None, "70563"), ("Leipzig", None, "04179"),
        ("Mannheim", None, "68306"), ("Aachen", None, "52066"), ("Cunewalde", None, "01307"),
        ("Brandenburg", None, "14776"), ("Münster", None, "44087"),
    )),
    Country("France", 12, "EMEA", ("40.32.####", "(1) 47.55.####", "78.32.####", "20.16.####"),
            "fr", (
        ("Nantes", None, "44000"), ("Paris", None, "750##"), ("Lyon", None, "69004"),
        ("Marseille", None, "13008"), ("Strasbourg", None, "67000"), ("Lille", None, "59000"),
        ("Toulouse", None, "31000"), ("Reims", None, "51100"), ("Versailles", None, "78000"),
    )),
    Country("Spain", 7, "EMEA", ("(91) 555 ## ##", "(95) 555 ## ##", "(93) 203 ####"), "es", (
        ("Madrid", None, "280##"), ("Barcelona", None, "08022"), ("Sevilla", None, "41101"),
    )),
    Country("Australia", 5, "APAC", ("03 9520 ####", "02 9936 ####", "61-7-3844-####"), "en", (
        ("Melbourne", "Victoria", "3004"), ("North Sydney", "NSW", "2060"),
        ("Chatswood", "NSW", "2067"), ("South Brisbane", "Queensland", "4101"),
        ("Glen Waverly", "Victoria", "3150"),
    )),
    Country("UK", 5, "EMEA", ("(171) 555-####", "(198) 555-####"), "en", (
        ("London", None, "WX1 #@@"), ("Manchester", None, "M# #@@"),
        ("Liverpool", None, "L# #@@"), ("Cowes", "Isle of Wight", "PO31 7PJ"),
    )),
    Country("Italy", 4, "EMEA", ("035-640###", "0522-556###", "011-4988###"), "it", (
        ("Bergamo", None, "24100"), ("Reggio Emilia", None, "42100"), ("Torino", None, "10100"),
        ("Milan", None, "201##"),
    )),
    Country("New Zealand", 4, "APAC", ("+64 9 312 ####", "64-9-3763###", "+64 4 499 ####"), "en", (
        ("Auckland", None, "1010"), ("Wellington", None, "6011"), ("Christchurch", None, "8011"),
    )),
    Country("Canada", 3, "NA", ("(604) 555-####", "(514) 555-####"), "en", (
        ("Vancouver", "BC", "V3F 2K1"), ("Tsawassen", "BC", "T2F 8M4"),
        ("Montréal", "Québec", "H1J 1C3"),
    )),
    Country("Finland", 3, "EMEA", ("90-224 8###", "981-443###"), "no", (
        ("Helsinki", None, "21240"), ("Espoo", None, "FIN-02271"), ("Oulu", None, "90110"),
    )),
    Country("Switzerland", 3, "EMEA", ("0452-076###", "0897-034###"), "de", (
        ("Bern", None, "3012"), ("Genève", None, "1203"), ("Lausanne", None, "1003"),
    )),
    Country("Singapore", 3, "APAC", ("+65 221 7###", "+65 224 1###", "11-98 9###"), "en", (
        ("Singapore", None, "079903"), ("Singapore", None, "069045"),
    )),
    Country("Norway", 3, "EMEA", ("07-98 9###", "+47 2267 3###", "+47 2212 1###"), "no", (
        ("Stavern", None, "4110"), ("Oslo", None, "N 0106"), ("Bergen", None, "N 5804"),
    )),
    Country("Denmark", 2, "EMEA", ("31 12 3###", "86 21 3###"), "no", (
        ("Kobenhavn", None, "1734"), ("Århus", None, "8200"),
    )),
    Country("Austria", 2, "EMEA", ("7675-3###", "6562-9###"), "de", (
        ("Graz", None, "8010"), ("Salzburg", None, "5020"),
    )),
    Country("Belgium", 2, "EMEA", ("(071) 23 67 2###", "(02) 201 24 ##"), "fr", (
        ("Bruxelles", None, "B-1180"), ("Charleroi", None, "B-6000"),
    )),
    Country("Japan", 2, "Japan", ("+81 06 6342 ####", "+81 3 3584 ####"), "en", (
        ("Osaka", "Osaka", "530-0003"), ("Minato-ku", "Tokyo", "106-0032"),
    )),
    Country("Sweden", 2, "EMEA", ("0921-12 3###", "0695-34 6###"), "no", (
        ("Luleå", None, "S-958 22"), ("Bräcke", None, "S-844 67"),
    )),
    Country("Ireland", 2, "EMEA", ("2967 5###", "+353 21 4## ###"), "en", (
        ("Dublin", None, None), ("Cork", None, None),
    )),
    Country("Portugal", 2, "EMEA", ("(1) 356-5###", "(1) 354-2###"), "es", (
        ("Lisboa", None, "1756"), ("Porto", None, "4050"),
    )),
    Country("Philippines", 1, "APAC", ("+63 2 555 3###",), "en", (
        ("Makati City", None, "1227 MM"),
    )),
    Country("Hong Kong", 1, "APAC", ("+852 2251 1###",), "en", (
        ("Central Hong Kong", None, None),
    )),
    Country("Netherlands", 1, "EMEA", ("20.16.1###",), "de", (("Amsterdam", None, "1081"),)),
    Country("Poland", 1, "EMEA", ("(26) 642-7###",), "de", (("Warszawa", None, "01-012"),)),
    Country("Israel", 1, "EMEA", ("+972 9 959 8###",), "en", (("Herzlia", None, "4610"),)),
    Country("South Africa", 1, "EMEA", ("+27 21 550 3###",), "en", (
        ("Hatfield", "Pretoria", "0028"),
    )),
    Country("Russia", 1, "EMEA", ("+7 812 293 0###",), "en", (
        ("Saint Petersburg", None, "196143"),
    )),
)  # fmt: skip

STREETS: dict[str, tuple[str, ...]] = {
    "en": (
        "Hanover Sq.",
        "Berkeley Gardens Blvd",
        "North Main St",
        "Oxford Street",
        "Fulham Road",
        "Pompton St.",
        "Drake St.",
        "Seventh Ave.",
        "Ashby Ave.",
        "Douglas Av.",
        "Broad Street",
        "High Street",
        "Main Street",
        "Wentworth Avenue",
        "Kingsway",
        "Harbour View Rd",
        "Queen Street",
        "Victoria Road",
        "Park Lane",
        "Elm Street",
    ),
    "de": (
        "Berliner Straße",
        "Mehrheimerstr.",
        "Taucherstraße",
        "Hauptstr.",
        "Walserweg",
        "Obere Str.",
        "Kirchgasse",
        "Heerstr.",
        "Geislweg",
        "Maubelstr.",
        "Luisenstr.",
    ),
    "fr": (
        "rue Royale",
        "rue des Bouchers",
        "boulevard Tirou",
        "rue du Commerce",
        "place Kléber",
        "rue Alsace-Lorraine",
        "chaussée de Tournai",
        "avenue de l'Europe",
        "rue Joseph-Bens",
        "rue des Cinquante Otages",
        "rue de l'Abbaye",
    ),
    "es": (
        "C/ Moralzarzal",
        "C/ Araquil",
        "Gran Vía",
        "Rambla de Cataluña",
        "C/ Romero",
        "Estrada da saúde",
        "Jardim das rosas",
        "Calle de Alcalá",
    ),
    "it": (
        "Via Monte Bianco",
        "Via Ludovico il Moro",
        "Strada Provinciale",
        "Corso Magenta",
        "Via dei Gracchi",
        "Viale Monza",
    ),
    "no": (
        "Erling Skakkes gate",
        "Åkergatan",
        "Torikatu",
        "Vinbæltet",
        "Smagsløget",
        "Berguvsvägen",
        "Keskuskatu",
        "Brehmen St.",
    ),
}

ADDRESS_LINE2: tuple[str, ...] = (
    "Suite 101", "Suite 400", "Level 3", "Level 6", "Floor No. 4", "PO Box 8250",
    "2nd Floor", "Bronz Apt. 3/6 Tesvikiye", "Unit 12", "Building 2",
)  # fmt: skip

CUSTOMER_PREFIXES: tuple[str, ...] = (
    "Atelier", "Signal", "Australian", "La Rochelle", "Baane", "Blauer See", "Muscle Machine",
    "Diecast", "Technics", "Herkku", "Dragon", "Volvo", "Danish", "Corrida", "Rovelli",
    "Cambridge", "Auto", "Classic", "Vintage", "Toys4", "Marta's", "Salzburg", "Petit",
    "Lyon", "Royal", "Osaka", "Alpha", "Cruz &", "Kelly's", "Heintze", "Boards &",
    "Euro+", "Mini", "Gift Depot", "Online", "Quebec", "Tekni", "Scandinavian", "Oulu",
    "Handji", "Enaco", "Norway", "Suominen", "Canadian", "Amica", "Lisboa", "Iberia",
    "Precious", "Stylish", "Double Decker", "Collectable", "Motor", "Souveniers And",
    "Bavarian", "Anna's", "Clover", "Frau da", "Havel & Zbyszek", "Saveley & Henriot",
    "West Coast", "Super Scale", "Reims", "Land of", "Mit Vergnügen", "Kommission",
    "Extreme", "Gifts4All", "Daedalus", "FunGiftIdeas.com", "Men 'R' US",
)  # fmt: skip

CUSTOMER_NOUNS: tuple[str, ...] = (
    "Gifts", "Collectables", "Collectors", "Replicas", "Mini Imports", "Auto Replicas",
    "Souveniers", "Model Replicas", "Toys", "Wholesale Imports", "Gift Stores", "Classics",
    "Diecast Collectables", "Models", "Shopping Channel", "Miniatures", "Mini Autos",
    "Imports", "Auto Warehouse", "Designs", "Hobbies", "Distributors", "Traders",
    "Scale Models", "Gift Shop",
)  # fmt: skip

CUSTOMER_SUFFIXES: tuple[str, ...] = (
    "", "", "", " Inc.", " Ltd.", ", Co.", " Co", " & Co.", ", Ltd", " Corporation",
    " GmbH", " Corp", ", Inc.", " Ltd",
)  # fmt: skip

FIRST_NAMES: tuple[str, ...] = (
    "Carine", "Jean", "Peter", "Janine", "Jonas", "Susan", "Zbyszek", "Roland", "Julie",
    "Kwai", "Diego", "Christina", "Jytte", "Mary", "Eric", "Jeff", "Kelvin", "Juri", "Wendy",
    "Veysel", "Keith", "Isabel", "Martine", "Marie", "Jerry", "Leslie", "Elizabeth", "Yoshi",
    "Miguel", "Julie", "Brydey", "Frédérique", "Mike", "Valarie", "Alexander", "Dan",
    "Rosa", "Sue", "Pascale", "Paolo", "Daniel", "Annette", "Helen", "Ann", "Yu", "Maria",
    "Palle", "Martín", "Dean", "Wing", "Violeta", "Allen", "Rachel", "Tony", "Hanna",
    "Michael", "Steve", "Georg", "Francisca", "Matti", "Arnold", "Pirkko", "Sven",
    "Ferdinand", "Mel", "Giovanni", "Catherine", "Horst", "Henriette", "Armand", "Laurence",
    "Akiko", "Kalle", "Dorothy", "Lino", "Braun", "Bradley", "Maurizio", "Sarah", "Thomas",
)  # fmt: skip

LAST_NAMES: tuple[str, ...] = (
    "Schmitt", "King", "Ferguson", "Labrune", "Bergulfsen", "Nelson", "Piestrzeniewicz",
    "Keitel", "Murphy", "Lee", "Freyre", "Berglund", "Petersen", "Saveley", "Natividad",
    "Young", "Leong", "Hashimoto", "Victorino", "Oeztan", "Franco", "de Castro", "Rancé",
    "Bertrand", "Tseng", "King", "Kentary", "Frick", "Karttunen", "Benitez", "Huxley",
    "Citeaux", "Gao", "Thompson", "Semenov", "Cartrain", "Salazar", "Taylor", "Pipps",
    "Accorti", "Moroni", "Hernandez", "Rovelli", "Feuer", "Koskitalo", "Camino", "Sommer",
    "Smith", "Larsson", "Mendel", "Ottlieb", "Klaeboe", "Pfalzheim", "Kloss", "Lincoln",
    "Andersen", "Perrier", "Müller", "Kuo", "Roulet", "Holz", "Brown", "Wilson", "Fresnière",
    "Shimamura", "Dewey", "Cassidy", "Urs", "Barajas", "Suominen", "Cruz", "O'Hara",
)  # fmt: skip

# --- employees (ASCII, they get e-mail addresses) -----------------------------------------

EMPLOYEE_FIRST: tuple[str, ...] = (
    "Diane", "Mary", "Jeff", "William", "Gerard", "Anthony", "Leslie", "Julie", "Steve",
    "Foon Yue", "George", "Loui", "Pamela", "Larry", "Barry", "Andy", "Peter", "Tom",
    "Mami", "Yoshimi", "Martin", "Gerhard", "Loic", "Nora", "Sofia", "Hannah", "Oliver",
    "Marc", "Elena", "Kenji", "Aiko", "Lucas", "Emma", "Noah", "Chloe", "Daniel",
)  # fmt: skip

EMPLOYEE_LAST: tuple[str, ...] = (
    "Murphy", "Patterson", "Firrelli", "Bondur", "Bow", "Jennings", "Thompson", "Tseng",
    "Vanauf", "Castillo", "Bott", "Jones", "Fixter", "Marsh", "King", "Nishi", "Kato",
    "Gerard", "Hernandez", "Moreau", "Weber", "Rossi", "Tanaka", "Suzuki", "Clarke",
    "Walsh", "Larsen", "Novak", "Silva", "Dubois", "Young", "Hill",
)  # fmt: skip

# --- products -----------------------------------------------------------------------------

VENDORS: tuple[str, ...] = (
    "Min Lin Diecast", "Classic Metal Creations", "Highway 66 Mini Classics",
    "Red Start Diecast", "Motor City Art Classics", "Second Gear Diecast",
    "Autoart Studio Design", "Welly Diecast Productions", "Unimax Art Galleries",
    "Studio M Art Models", "Exoto Designs", "Gearbox Collectibles", "Carousel DieCast Legends",
)  # fmt: skip

#: Per product line: (original product count, allowed scales, models). ``{1950-1999}`` in a
#: model is replaced by a year of that range; a model without it is used once as it is.
PRODUCT_MODELS: dict[str, tuple[int, tuple[str, ...], tuple[str, ...]]] = {
    "Classic Cars": (38, ("1:10", "1:12", "1:18", "1:24"), (
        "{1952-1971} Alpine Renault 1300", "{1965-1975} Alfa Romeo GTA",
        "{1986-1994} Lancia Delta 16V", "{1964-2004} Ford Mustang", "{2002-2004} Ferrari Enzo",
        "{1960-1969} Corvair Monza", "{1966-1978} Dodge Charger", "{1960-1970} Ford Falcon",
        "{1964-1974} Plymouth Hemi Cuda", "{1978-2002} Mazda RX-7", "{1963-1965} Aston Martin DB5",
        "{1948-1955} Porsche 356-A Roadster", "{1972-2004} Honda Civic",
        "{1997-2002} Chrysler Plymouth Prowler", "{1968-1971} Dodge Super Bee",
        "{1972-1976} Ford Gran Torino", "{1962-1980} Triumph Spitfire",
        "{1967-2002} Chevrolet Camaro Z28", "{1990-2001} Lamborghini Diablo",
        "{1948-1954} Jaguar XK 120", "{1950-1956} Citroen-15CV", "{1965-1967} Shelby Cobra 427 S/C",
        "{1953-2004} Chevy Corvette", "{1955-1959} Porsche 356A Coupe", "{1979-2002} Toyota Supra",
        "{1999-2004} Ferrari 360 Spider red", "{1964-1972} Chevy Chevelle SS 454",
        "{1965-1976} Dodge Coronet", "{1958-1985} Chevrolet Impala",
        "{1955-1997} Ford Thunderbird", "{1966-1977} BMW 2002", "{1954-1963} Mercedes-Benz 300 SL",
        "{1948-2003} Volkswagen Beetle", "{1964-1974} Pontiac GTO", "{1963-1999} Buick Riviera",
        "{1953-2002} Cadillac Eldorado", "{1967-1973} Maserati Ghibli", "{1962-1975} Lotus Elan",
        "{1969-1973} Datsun 240Z", "{1961-1977} Renault Alpine A110", "{1957-1975} Fiat 500",
        "{1961-2000} Austin Mini Cooper",
    )),
    "Motorcycles": (13, ("1:10", "1:12", "1:18", "1:24", "1:32", "1:50"), (
        "{1969-1975} Harley Davidson Ultimate Chopper", "{1994-1999} Moto Guzzi 1100i",
        "{2000-2003} Harley-Davidson Eagle Drag Bike", "{2000-2003} Suzuki XREO",
        "{1936-1947} Harley Davidson El Knucklehead", "{1955-1961} Vespa GS150",
        "{1994-2003} BMW R 1100 S", "{1956-1963} BSA Gold Star DBD34",
        "{1993-2003} Ducati 900 Monster", "{1993-2001} BMW F650 ST", "{1996-2001} Ducati 996 R",
        "{1967-1974} Ducati 350 Mk3 Desmo", "{1999-2003} Yamaha YZR M1",
        "{1959-1983} Triumph Bonneville", "{1969-2003} Honda CB750", "{1967-1977} Norton Commando",
        "{1940-1953} Indian Chief", "{1972-1976} Kawasaki Z1", "{1971-1974} Moto Guzzi V7 Sport",
    )),
    "Planes": (12, ("1:24", "1:72", "1:700"), (
        "P-51-D Mustang", "Corsair F4U ( Bird Cage)", "American Airlines: B767-300",
        "America West Airlines B757-200", "ATA: B757-300", "F/A 18 Hornet 1/72",
        "American Airlines: MD-11S", "Boeing X-32A JSF", "{1980-1999} Black Hawk Helicopter",
        "{1917-1935} British Royal Navy Airplane", "{1903-1918} Vintage Bi-Plane",
        "{1910-1920} Vintage Tri-Plane", "{1940-1945} Spitfire Mk IX", "{1936-1955} Douglas DC-3",
        "{1943-1958} Lockheed Constellation", "{1969-2003} Concorde", "{1916-1918} Sopwith Camel",
    )),
    "Ships": (9, ("1:72", "1:700"), (
        "The Schooner Bluenose", "The Mayflower", "HMS Bounty", "The USS Constitution Ship",
        "The Titanic", "The Queen Mary", "Pont Yacht", "18th century schooner", "The Cutty Sark",
        "HMS Victory", "The Santa Maria", "{1950-1999} Yamaha Speed Boat",
        "{1930-1970} Chris-Craft Runabout", "{1962-1996} Riva Aquarama",
        "{1955-1999} Hatteras Sport Fisher",
    )),
    "Trains": (3, ("1:18", "1:32", "1:50"), (
        "Collectable Wooden Train", "{1930-1958} Chicago Surface Lines Streetcar",
        "{1920-1962} City of Detroit Streetcar", "{1920-1950} Steam Locomotive 4-6-2",
        "{1941-1944} Union Pacific Big Boy", "{1883-1939} Orient Express Sleeping Car",
        "{1923-1963} Flying Scotsman",
    )),
    "Trucks and Buses": (11, ("1:12", "1:18", "1:24", "1:32", "1:50"), (
        "{1951-1976} Setra Bus", "{1947-1972} Chevy Pickup", "{1932-1956} Ford Pickup Truck",
        "{1950-1995} Mercedes Tour Bus", "{1924-1938} Ford Fire Engine", "{1940-1949} Ford truck",
        "{1950-1979} Volkswagen Microbus", "{1980-1989} GM Manhattan Express",
        "{1954-1975} Greyhound Scenicruiser", "{1987-2002} Peterbilt 379 Stake Bed with Outrigger",
        "{1936-1955} Diamond T620 Semi-Skirted Tanker", "{1928-1942} Ford Delivery Sedan",
        "{1953-1966} Mack B61 Dump Truck", "{1961-2002} Kenworth W900",
        "{1961-1980} International Harvester Scout",
    )),
    "Vintage Cars": (24, ("1:18", "1:24", "1:32"), (
        "{1930-1939} Lincoln Berline", "{1934-1936} Mercedes-Benz 500K Special Roadster",
        "{1910-1930} Grand Touring Sedan", "{1908-1915} Ford Town Car",
        "{1928-1932} Model A Ford J-Coupe", "{1928-1932} Mercedes-Benz SSK",
        "{1908-1927} Ford Model T Speedster", "{1932-1940} Ford V8 Coupe",
        "{1903-1904} Ford Model A",
        "{1904-1925} Maxwell Touring Car", "{1948-1949} Porsche Type 356 Roadster",
        "{1940-1942} Chevrolet Special Deluxe Cabriolet",
        "{1931-1934} Alfa Romeo 8C2300 Spider Sport", "{1904-1910} Buick Runabout",
        "{1930-1941} Cadillac Limousine", "{1937-1941} Chevrolet Deluxe Coupe",
        "{1930-1940} Cadillac V-16 Presidential Limousine",
        "{1912-1927} Ford Model T Delivery Wagon", "{1937-1939} Horch 930V Limousine",
        "{1934-1937} Chrysler Airflow", "{1928-1931} Ford Phaeton Deluxe",
        "{1929-1930} Buick Marquette Phaeton", "{1924-1930} Bugatti Type 35",
        "{1928-1937} Duesenberg Model J", "{1907-1926} Rolls-Royce Silver Ghost",
        "{1932-1939} Packard Twelve", "{1922-1939} Austin Seven",
        "18th Century Vintage Horse Carriage",
    )),
}  # fmt: skip

#: Replica features per product line, three or four of which describe each product.
PRODUCT_FEATURES: dict[str, tuple[str, ...]] = {
    "Classic Cars": (
        "opening hood", "opening doors", "opening trunk", "detailed engine", "working steering",
        "rubber tires", "chrome trim", "detailed interior", "tinted windows",
        "detailed undercarriage", "removable hardtop",
    ),
    "Motorcycles": (
        "working kickstand", "front suspension", "gear-shift lever", "footbrake lever",
        "drive chain", "rotating wheels", "working steering", "chrome exhaust pipes",
        "official logos",
    ),
    "Planes": (
        "rotating propellers", "retractable wheels", "official logos and insignias",
        "rotating jet engines", "opening cockpit", "detailed landing gear", "display stand",
    ),
    "Ships": (
        "wood and brass fittings", "rigged masts and sails", "hand-painted hull",
        "detailed deck", "working rudder", "display stand with name plate",
    ),
    "Trains": (
        "hand-painted decals", "rotating wheels", "detailed cab", "opening doors",
        "brass fittings", "display track",
    ),
    "Trucks and Buses": (
        "opening cargo doors", "opening hood", "detailed engine", "working steering",
        "rubber tires", "detailed interior", "official logos", "tilting cab",
    ),
    "Vintage Cars": (
        "opening hood", "opening doors", "detailed engine", "working steering",
        "spoked wheels", "folding top", "detailed interior", "brass headlamps",
    ),
}  # fmt: skip


PRODUCT_CLOSINGS: tuple[str, ...] = (
    "All parts are particularly delicate due to their precise scale and require special care "
    "and attention.",
    "Comes fully assembled and ready for display in the home or office.",
    "Color: red. Material: diecast metal with plastic and rubber parts.",
    "Includes a certificate of authenticity and a display base.",
    "A must-have for the serious collector; it's the \"real thing\" in miniature.",
    "Hand-finished by our craftsmen, each replica is unique.",
)  # fmt: skip

# --- order comments -----------------------------------------------------------------------

COMMENTS_SHIPPED: tuple[str, ...] = (
    "Check on availability.",
    "Customer requested that FedEx Ground is used for this shipping",
    "Customer requested that DHL is used for this shipping",
    "Can we deliver the new Ford Mustang models by end-of-quarter?",
    "Customer is interested in buying more Ferrari models",
    "Customer very concerned about the exact color of the models. There is high risk that "
    "he may dispute the order because there is a slight color mismatch",
    "We need to keep in close contact with their Marketing VP. He is the decision maker for "
    "all their purchases.",
    "Difficult to negotiate with customer. We need more marketing materials",
    "Customer requested special shipment. The instructions were passed along to the warehouse",
    "They want to reevaluate their terms agreement with Finance.",
    'Customer says the "Limited Edition" box was damaged; we\'ll send a new one.',
    "Customer doesn't like the colors and precision of the models.",
)

COMMENTS_BY_STATUS: dict[str, tuple[str, ...]] = {
    "Cancelled": (
        "Customer cancelled due to urgent budgeting issues. Must be cautious when dealing "
        "with them in the future. Since order shipped already we must discuss who would cover "
        "the shipping charges.",
        "Cautious optimism. We have happy customers here, if we can keep them well stocked, "
        "I need all the information I can get on the planned shippments of Porches",
    ),
    "Resolved": (
        "Customer disputed the order, we agreed to give a 10% discount, and the issue was "
        "resolved.",
        "Disputed then Resolved on 'Shipping' terms: the customer's invoice was corrected.",
        'Refund issued for two damaged models; customer says "all good" now.',
    ),
    "On Hold": (
        "Customer credit limit exceeded. Will ship when a payment is received",
        "Order was on hold because customer's credit limit had been exceeded. Order will "
        "ship when payment is received",
        'On hold until the "Vintage Cars" stock arrives, per customer\'s request.',
    ),
    "In Process": (
        "Check on availability.",
        "Customer asked for a combined shipment, if possible, with the next order",
        'Wait for the customer\'s confirmation of the "express" shipping quote.',
    ),
    "Disputed": (
        'Customer claims the scales of the models don\'t match what was discussed; "1:18", '
        "not 1:24, was agreed.",
        'The customer\'s "Limited Edition" models arrived scratched, and they want a refund.',
        'Customer doesn\'t accept the "late delivery" fee, says it was not in the contract.',
    ),
}

#: Comments of cancelled orders that never shipped (the ones above shipped already).
COMMENTS_CANCELLED_UNSHIPPED: tuple[str, ...] = (
    "Customer called to cancel. The warehouse was notified in time and the order didn't "
    "ship. They have a new VP of Sales and are shifting their sales model.",
    'Order cancelled by the customer, "budget freeze" until next quarter; nothing shipped.',
)

#: Original status mix per 326 orders; the rest (303) are 'Shipped'.
STATUS_QUOTAS: tuple[tuple[str, int], ...] = (
    ("Cancelled", 6),
    ("Resolved", 4),
    ("On Hold", 4),
    ("In Process", 6),
    ("Disputed", 3),
)

#: Relative number of orders per calendar month (1..12), with the November peak.
MONTH_WEIGHTS: tuple[float, ...] = (8, 8, 9, 8, 8, 8, 8, 8, 9, 14, 30, 10)
