-- Customers with a surrogate key and the key of their address in dim_locations.
SELECT
    row_number() OVER (ORDER BY c.customerNumber) AS customer_key,
    c.customerNumber,
    c.customerName,
    c.contactLastName,
    c.contactFirstName,
    c.phone,
    c.creditLimit,
    c.salesRepEmployeeNumber,
    l.location_key
FROM raw.customers AS c
LEFT JOIN gold.dim_locations AS l
    ON  c.addressLine1 IS NOT DISTINCT FROM l.addressLine1
    AND c.addressLine2 IS NOT DISTINCT FROM l.addressLine2
    AND c.city IS NOT DISTINCT FROM l.city
    AND c.state IS NOT DISTINCT FROM l.state
    AND c.postalCode IS NOT DISTINCT FROM l.postalCode
    AND c.country IS NOT DISTINCT FROM l.country
