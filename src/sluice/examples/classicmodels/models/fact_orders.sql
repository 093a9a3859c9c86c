-- sluice: incremental unique_key=orderNumber,orderLineNumber
-- One row per order line. Dimensions are joined with LEFT JOIN so that a missing
-- dimension row shows up as a NULL key (caught by the checks) instead of silently
-- dropping the line; the location comes through the customer, never via postalCode.
-- Incremental: a run recomputes only the lines that are new or whose order, customer,
-- product or sales rep changed, and merges them by the key above (see the README).
SELECT
    od.orderNumber,
    od.orderLineNumber,
    dc.customer_key,
    dc.location_key,
    dp.product_key,
    de.employee_key,
    CAST(year(o.orderDate) * 10000 + month(o.orderDate) * 100 + day(o.orderDate) AS INTEGER)
        AS order_date_key,
    o.orderDate,
    o.requiredDate,
    o.shippedDate,
    o.status,
    od.quantityOrdered,
    od.priceEach,
    CAST(od.quantityOrdered * od.priceEach AS DECIMAL(18, 2)) AS orderAmount,
    dp.buyPrice,
    dp.MSRP
FROM raw.orderdetails AS od
LEFT JOIN raw.orders AS o ON o.orderNumber = od.orderNumber
LEFT JOIN gold.dim_customers AS dc ON dc.customerNumber = o.customerNumber
LEFT JOIN gold.dim_products AS dp ON dp.productCode = od.productCode
LEFT JOIN gold.dim_employees AS de ON de.employeeNumber = dc.salesRepEmployeeNumber
