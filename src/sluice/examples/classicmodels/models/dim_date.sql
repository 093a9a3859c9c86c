-- One row per calendar day from the first to the last date any order mentions.
WITH order_dates AS (
    SELECT orderDate AS d FROM raw.orders
    UNION ALL SELECT requiredDate FROM raw.orders
    UNION ALL SELECT shippedDate FROM raw.orders
),
days AS (
    SELECT CAST(unnest(generate_series(min(d), max(d), INTERVAL 1 DAY)) AS DATE) AS fullDate
    FROM order_dates
)
SELECT
    CAST(year(fullDate) * 10000 + month(fullDate) * 100 + day(fullDate) AS INTEGER) AS date_key,
    fullDate,
    year(fullDate) AS year,
    quarter(fullDate) AS quarter,
    month(fullDate) AS month,
    monthname(fullDate) AS monthName,
    dayofmonth(fullDate) AS dayOfMonth,
    isodow(fullDate) AS dayOfWeek,
    dayname(fullDate) AS dayName,
    isodow(fullDate) >= 6 AS isWeekend
FROM days
