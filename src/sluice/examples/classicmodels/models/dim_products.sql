-- Products with their product line's description.
SELECT
    row_number() OVER (ORDER BY p.productCode) AS product_key,
    p.productCode,
    p.productName,
    p.productLine,
    pl.textDescription AS productLineDescription,
    p.productScale,
    p.productVendor,
    p.productDescription,
    p.quantityInStock,
    p.buyPrice,
    p.MSRP
FROM raw.products AS p
LEFT JOIN raw.productlines AS pl ON pl.productLine = p.productLine
