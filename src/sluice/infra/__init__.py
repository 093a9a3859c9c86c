"""Plan / apply / destroy of Sluice's own resources: catalog, warehouse, databases, tables."""
