-- One row per distinct customer address. The key is the whole address, never postalCode
-- alone: postal codes repeat across cities and countries, and some customers have none.
SELECT
    row_number() OVER (
        ORDER BY country, state, city, postalCode, addressLine1, addressLine2
    ) AS location_key,
    addressLine1,
    addressLine2,
    city,
    state,
    postalCode,
    country
FROM (
    SELECT DISTINCT addressLine1, addressLine2, city, state, postalCode, country
    FROM raw.customers
) AS addresses
