-- Employees (the sales reps of the orders) with their office.
SELECT
    row_number() OVER (ORDER BY e.employeeNumber) AS employee_key,
    e.employeeNumber,
    e.lastName,
    e.firstName,
    e.email,
    e.extension,
    e.jobTitle,
    e.reportsTo,
    e.officeCode,
    o.city AS officeCity,
    o.country AS officeCountry,
    o.territory AS officeTerritory
FROM raw.employees AS e
LEFT JOIN raw.offices AS o ON o.officeCode = e.officeCode
