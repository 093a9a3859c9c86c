"""Deterministic generator of the ``classicmodels`` source database as a SQLite file.

Scale 1 has exactly the sizes of the MySQL sample; customers, orders, order lines and
payments grow linearly with the scale, products and employees logarithmically, and the
seven product lines and seven offices stay as they are. The original's quirks are kept on
purpose at every scale: NULL states and postal codes, a postal code shared by customers of
two countries, orders never shipped, free-text comments with quotes and commas, customers
without orders or sales rep, and one product that was never ordered.
"""

from __future__ import annotations

import contextlib
import itertools
import math
import os
import re
import sqlite3
import tempfile
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import date, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from sluice.errors import SourceError
from sluice.sources.classicmodels import _names as words
from sluice.sources.classicmodels.schema import TABLES, Table, sqlite_ddl

IntArray = npt.NDArray[np.int64]
Column = list[Any] | npt.NDArray[Any]
Columns = list[Column]

_START = date(2003, 1, 6)
_END = date(2005, 5, 31)
_N_DAYS = (_END - _START).days + 1
_LINES_PER_ORDER = (1, 17)
_BASE_SIZES = {
    "productlines": 7,
    "products": 110,
    "offices": 7,
    "employees": 23,
    "customers": 122,
    "payments": 273,
    "orders": 326,
    "orderdetails": 2996,
}
_ACTIVE_CUSTOMERS = 98  # of 122 in the original: those with orders and a sales rep
_EXECUTIVES = 6  # President, two VPs, three sales managers
_CHUNK = 65_536  # rows converted to Python objects at a time while writing
_LETTERS = "ABCDEFGHIJKLMNOPQRSTUVWXYZ"
_YEARS = re.compile(r"\{(\d{4})-(\d{4})\}")


def expected_row_counts(scale: int) -> dict[str, int]:
    """Return the row count of every table at ``scale``.

    >>> expected_row_counts(1)["orderdetails"], expected_row_counts(10)["orders"]
    (2996, 3260)
    """
    log = math.log(scale)
    counts = {name: size * scale for name, size in _BASE_SIZES.items()}
    counts.update(
        productlines=7,
        offices=7,
        products=110 + round(40 * log),
        employees=23 + round(6 * log),
    )
    return counts


def generate_classicmodels(path: str | Path, *, scale: int = 1, seed: int = 42) -> dict[str, int]:
    """Write the ``classicmodels`` database to the SQLite file ``path``; return row counts.

    The file appears atomically: it is written next to ``path`` and moved into place only
    when complete. Same ``scale`` and ``seed`` give the same rows.

    >>> import tempfile, pathlib
    >>> with tempfile.TemporaryDirectory() as d:
    ...     generate_classicmodels(pathlib.Path(d) / "cm.db")["customers"]
    122
    """
    target = _check_arguments(path, scale, seed)
    tmp: str | None = None
    try:
        fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent)
        os.close(fd)
        tables = _build(scale, seed)
        _write_sqlite(tmp, tables)
        os.chmod(tmp, 0o644)
        os.replace(tmp, target)
        tmp = None
    except (OSError, sqlite3.Error) as exc:
        raise SourceError(
            f"Cannot write the classicmodels database to '{target}': {exc}.",
            hint="Choose a path in a writable folder with free space.",
        ) from exc
    finally:
        if tmp is not None:
            with contextlib.suppress(OSError):
                os.unlink(tmp)
    return {name: len(cols[0]) for name, cols in tables.items()}


def classicmodels_rows(
    *, scale: int = 1, seed: int = 42
) -> Iterator[tuple[Table, Iterator[tuple[Any, ...]]]]:
    """Every table of the generated database with its rows, in dependency order.

    >>> tables = dict((t.name, list(rows)) for t, rows in classicmodels_rows())
    >>> len(tables["orderdetails"]), tables["offices"][0][1]
    (2996, 'San Francisco')
    """
    _check_numbers(scale, seed)
    tables = _build(scale, seed)
    for table in TABLES:
        yield table, _rows(tables[table.name])


def write_classicmodels(
    url: str, *, scale: int = 1, seed: int = 42, replace: bool = False, base_dir: Path | None = None
) -> dict[str, int]:
    """Write the generated database into the SQLite, MariaDB or PostgreSQL ``url`` names.

    The same writers as ``load_dump``: all or nothing, existing tables refused unless
    ``replace``. Returns the row count of every table.
    """
    from sluice.sources.dbapi import url_dialect
    from sluice.sources.writers import open_writer

    url_dialect(url)
    _check_numbers(scale, seed)
    with open_writer(url, replace=replace, base_dir=base_dir) as writer:
        for table in TABLES:
            writer.create(table)
        for table, rows in classicmodels_rows(scale=scale, seed=seed):
            for chunk in _batches(rows):
                writer.insert(table.name, table.column_names, chunk)
    return writer.counts


def _batches(rows: Iterator[tuple[Any, ...]]) -> Iterator[list[tuple[Any, ...]]]:
    while chunk := list(itertools.islice(rows, _CHUNK)):
        yield chunk


def _check_numbers(scale: int, seed: int) -> None:
    if isinstance(scale, bool) or not isinstance(scale, int) or scale < 1:
        raise SourceError(
            f"Invalid classicmodels scale {scale!r}.", hint="Pass a whole number >= 1, e.g. 1."
        )
    if isinstance(seed, bool) or not isinstance(seed, int) or seed < 0:
        raise SourceError(
            f"Invalid classicmodels seed {seed!r}.", hint="Pass a whole number >= 0, e.g. 42."
        )


def _check_arguments(path: str | Path, scale: int, seed: int) -> Path:
    _check_numbers(scale, seed)
    target = Path(path)
    if target.is_dir():
        raise SourceError(
            f"Cannot write the classicmodels database to '{target}': it is a folder.",
            hint="Pass a file path such as 'classicmodels.db'.",
        )
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise SourceError(
            f"Cannot create the folder '{target.parent}' for the classicmodels database: {exc}.",
            hint="Choose a path in a writable folder.",
        ) from exc
    return target


# --- building the rows --------------------------------------------------------------------


@dataclass(frozen=True)
class _Employees:
    columns: Columns
    reps_by_territory: dict[str, IntArray]


@dataclass(frozen=True)
class _Customers:
    columns: Columns
    numbers: IntArray
    active: IntArray  # indexes of customers with a sales rep (they place the orders)


@dataclass(frozen=True)
class _Products:
    columns: Columns
    codes: npt.NDArray[np.str_]  # sorted ascending
    msrp_cents: IntArray
    never_ordered: int


def _build(scale: int, seed: int) -> dict[str, Columns]:
    rng = np.random.Generator(np.random.PCG64(seed))
    sizes = expected_row_counts(scale)
    products = _products(rng, sizes["products"])
    employees = _employees(rng, sizes["employees"])
    customers = _customers(rng, scale, employees.reps_by_territory)
    orders, details, totals, shipped = _orders(rng, sizes, customers, products)
    payments = _payments(rng, sizes["payments"], orders, totals, shipped)
    offices: Columns = [[str(i + 1) for i in range(len(words.OFFICES))]]
    offices += [list(col) for col in zip(*words.OFFICES, strict=True)]
    productlines: Columns = [
        [line for line, _ in words.PRODUCT_LINES],
        [text for _, text in words.PRODUCT_LINES],
    ]
    productlines += [[None] * len(words.PRODUCT_LINES)] * 2
    return {
        "productlines": productlines,
        "products": products.columns,
        "offices": offices,
        "employees": employees.columns,
        "customers": customers.columns,
        "payments": payments,
        "orders": orders,
        "orderdetails": details,
    }


def _fill(rng: np.random.Generator, template: str, count: int) -> list[str]:
    """Fill ``#`` (0-9), ``%`` (2-9) and ``@`` (A-Z) in ``template`` for ``count`` values."""
    chars = np.array(list(template), dtype="<U1")
    grid = np.broadcast_to(chars, (count, len(chars))).copy()
    for symbol, alphabet in (("#", "0123456789"), ("%", "23456789"), ("@", _LETTERS)):
        cols = np.flatnonzero(chars == symbol)
        if cols.size:
            pool = np.array(list(alphabet), dtype="<U1")
            grid[:, cols] = pool[rng.integers(0, len(pool), (count, cols.size))]
    joined: list[str] = grid.view(f"<U{len(chars)}").ravel().tolist()
    return joined


def _pick(rng: np.random.Generator, choices: Sequence[str], count: int) -> list[str]:
    return [choices[i] for i in rng.integers(0, len(choices), count).tolist()]


def _cents_to_numbers(cents: IntArray) -> list[float]:
    numbers: list[float] = (cents / 100).tolist()
    return numbers


def _products(rng: np.random.Generator, count: int) -> _Products:
    lines = list(words.PRODUCT_MODELS)
    quotas = np.array([words.PRODUCT_MODELS[line][0] for line in lines], dtype=np.float64)
    names: list[str] = []
    line_of: list[str] = []
    scales: list[str] = []
    descriptions: list[str] = []
    for line, n in zip(lines, _apportion(quotas, count).tolist(), strict=True):
        _, allowed, models = words.PRODUCT_MODELS[line]
        names += _unique(rng, _model_names(models), n)
        line_of += [line] * n
        scales += _pick(rng, allowed, n)
        descriptions += _descriptions(rng, words.PRODUCT_FEATURES[line], n)
    digits = rng.choice(9000, count, replace=False) + 1000
    codes = np.array(
        [f"S{s.split(':')[1]}_{d}" for s, d in zip(scales, digits.tolist(), strict=True)]
    )
    order = np.argsort(codes, kind="stable")
    buy = rng.integers(1500, 10500, count)
    msrp = np.maximum(np.round(buy * rng.uniform(1.3, 2.1, count)).astype(np.int64), buy + 100)
    columns: Columns = [
        codes.tolist(),
        names,
        line_of,
        scales,
        _pick(rng, words.VENDORS, count),
        descriptions,
        rng.integers(15, 9998, count).tolist(),
        _cents_to_numbers(buy),
        _cents_to_numbers(msrp),
    ]
    columns = [[col[i] for i in order.tolist()] for col in columns]
    return _Products(
        columns=columns,
        codes=codes[order],
        msrp_cents=msrp[order],
        never_ordered=int(rng.integers(0, count)),
    )


def _model_names(models: Sequence[str]) -> list[str]:
    """Every name a product line can use: models expanded over their year ranges."""
    names = []
    for model in models:
        years = _YEARS.search(model)
        if years is None:
            names.append(model)
            continue
        head, tail = model[: years.start()], model[years.end() :]
        names += [f"{head}{y}{tail}" for y in range(int(years[1]), int(years[2]) + 1)]
    return names


def _descriptions(rng: np.random.Generator, features: Sequence[str], n: int) -> list[str]:
    texts = []
    for _ in range(n):
        f = [features[i] for i in rng.choice(len(features), 4, replace=False).tolist()]
        closing = words.PRODUCT_CLOSINGS[int(rng.integers(0, len(words.PRODUCT_CLOSINGS)))]
        texts.append(f"This replica features {', '.join(f[:3])} and {f[3]}. {closing}")
    return texts


def _unique(rng: np.random.Generator, pool: Sequence[str], n: int) -> list[str]:
    """``n`` distinct values from ``pool``; once it runs out, repeats get a number suffix."""
    pool = list(dict.fromkeys(pool))
    rounds = -(-n // len(pool))
    picks = rng.choice(len(pool) * rounds, n, replace=False).tolist()
    return [
        pool[i % len(pool)] + (f" {i // len(pool) + 1}" if i >= len(pool) else "") for i in picks
    ]


def _apportion(weights: npt.NDArray[np.float64], total: int) -> IntArray:
    """Split ``total`` in proportion to ``weights`` (largest remainder), each part >= 1."""
    exact = weights / weights.sum() * (total - len(weights))
    parts: IntArray = np.floor(exact).astype(np.int64) + 1
    rest = total - int(parts.sum())
    parts[np.argsort(-(exact - np.floor(exact)), kind="stable")[:rest]] += 1
    return parts


def _employees(rng: np.random.Generator, count: int) -> _Employees:
    n_reps = count - _EXECUTIVES
    n_offices = len(words.OFFICES)
    weights = np.array(words.OFFICE_REP_WEIGHTS)
    extra = rng.choice(n_offices, n_reps - 2 * n_offices, p=weights / weights.sum())
    rep_office = np.sort(np.concatenate([np.repeat(np.arange(n_offices), 2), extra]))
    gaps = rng.integers(10, 90, count)
    gaps[0] = 0
    numbers = 1002 + np.cumsum(gaps)
    num = numbers.tolist()
    titles = ["President", "VP Sales", "VP Marketing"]
    titles += ["Sales Manager (APAC)", "Sales Manager (EMEA)", "Sales Manager (NA)"]
    offices = ["1", "1", "1", "6", "4", "1"]
    reports: list[int | None] = [None, num[0], num[0], num[1], num[1], num[1]]
    manager = {"APAC": num[3], "EMEA": num[4], "NA": num[5]}
    first_japan: int | None = None
    reps_by_territory: dict[str, list[int]] = {}
    for i, office in enumerate(rep_office.tolist()):
        territory = words.OFFICES[office][7]
        number = num[_EXECUTIVES + i]
        titles.append("Sales Rep")
        offices.append(str(office + 1))
        if territory == "Japan":
            reports.append(first_japan or num[1])
            first_japan = first_japan or number
        else:
            reports.append(manager[territory])
        reps_by_territory.setdefault(territory, []).append(number)
    first = _pick(rng, words.EMPLOYEE_FIRST, count)
    last = _pick(rng, words.EMPLOYEE_LAST, count)
    emails: list[str] = []
    seen: dict[str, int] = {}
    for f, ln in zip(first, last, strict=True):
        user = f"{f[0]}{ln}".lower().replace(" ", "")
        seen[user] = seen.get(user, 0) + 1
        suffix = "" if seen[user] == 1 else str(seen[user])
        emails.append(f"{user}{suffix}@classicmodelcars.com")
    extensions = [f"x{e}" for e in rng.integers(100, 10000, count).tolist()]
    columns: Columns = [num, last, first, extensions, emails, offices, reports, titles]
    return _Employees(columns, {t: np.array(v) for t, v in reps_by_territory.items()})


def _customers(
    rng: np.random.Generator, scale: int, reps_by_territory: dict[str, IntArray]
) -> _Customers:
    quotas = np.array([c.quota for c in words.COUNTRIES]) * scale
    n = int(quotas.sum())
    country_of = rng.permutation(np.repeat(np.arange(len(words.COUNTRIES)), quotas))
    cols = {k: np.empty(n, dtype=object) for k in ("phone", "addr", "city", "state", "postal")}
    country = np.empty(n, dtype=object)
    rep = np.empty(n, dtype=object)
    active = np.sort(rng.choice(n, round(n * _ACTIVE_CUSTOMERS / 122), replace=False))
    is_active = np.zeros(n, dtype=bool)
    is_active[active] = True
    for ci, c in enumerate(words.COUNTRIES):
        idx = np.flatnonzero(country_of == ci)
        country[idx] = c.name
        phone_pick = rng.integers(0, len(c.phones), idx.size)
        for ti, template in enumerate(c.phones):
            sel = idx[phone_pick == ti]
            cols["phone"][sel] = _fill(rng, template, sel.size)
        city_pick = rng.integers(0, len(c.cities), idx.size)
        for ki, (city, state, postal) in enumerate(c.cities):
            sel = idx[city_pick == ki]
            cols["city"][sel] = city
            cols["state"][sel] = state
            cols["postal"][sel] = None if postal is None else _fill(rng, postal, sel.size)
        streets = _pick(rng, words.STREETS[c.style], idx.size)
        house = rng.integers(1, 400, idx.size).tolist()
        cols["addr"][idx] = [_address(c.style, s, h) for s, h in zip(streets, house, strict=True)]
        reps = reps_by_territory[c.territory]
        act = idx[is_active[idx]]
        rep[act] = reps[rng.integers(0, len(reps), act.size)].tolist()
    # Quirk: one postal code shared by customers in two countries (and so two cities).
    germany = np.flatnonzero(country == "Germany")
    spain = np.flatnonzero(country == "Spain")
    cols["postal"][rng.choice(spain)] = cols["postal"][rng.choice(germany)]
    line2 = np.full(n, None, dtype=object)
    has_line2 = np.flatnonzero(rng.random(n) < 0.18)
    line2[has_line2] = _pick(rng, words.ADDRESS_LINE2, has_line2.size)
    credit = np.zeros(n, dtype=np.int64)
    limits = np.clip(rng.lognormal(math.log(85_000), 0.4, active.size), 21_000, 227_600)
    credit[active] = np.round(limits / 100).astype(np.int64) * 10_000
    gaps = rng.integers(1, 6, n)
    gaps[0] = 0
    numbers = 103 + np.cumsum(gaps)
    columns: Columns = [
        numbers.tolist(),
        _customer_names(rng, n),
        _pick(rng, words.LAST_NAMES, n),
        _pick(rng, words.FIRST_NAMES, n),
        cols["phone"].tolist(),
        cols["addr"].tolist(),
        line2.tolist(),
        cols["city"].tolist(),
        cols["state"].tolist(),
        cols["postal"].tolist(),
        country.tolist(),
        rep.tolist(),
        _cents_to_numbers(credit),
    ]
    return _Customers(columns, numbers, active)


def _address(style: str, street: str, number: int) -> str:
    if style == "en":
        return f"{number} {street}"
    if style == "fr":
        return f"{number}, {street}"
    if style == "es":
        return f"{street}, {number}"
    return f"{street} {number}"


def _customer_names(rng: np.random.Generator, n: int) -> list[str]:
    a, b, c = words.CUSTOMER_PREFIXES, words.CUSTOMER_NOUNS, words.CUSTOMER_SUFFIXES
    pool = [f"{x} {y}{z}" for z in c for y in b for x in a]
    return _unique(rng, [name for name in pool if len(name) <= 44], n)


def _order_days(rng: np.random.Generator, n: int) -> IntArray:
    days = [_START + timedelta(days=d) for d in range(_N_DAYS)]
    weights = np.array(
        [words.MONTH_WEIGHTS[d.month - 1] * (1.0 if d.year == 2003 else 1.35) for d in days]
    )
    offsets = np.sort(rng.choice(_N_DAYS, n, p=weights / weights.sum()))
    offsets[0], offsets[-1] = 0, _N_DAYS - 1
    return offsets


def _lines_per_order(rng: np.random.Generator, n_orders: int, total: int) -> IntArray:
    lo, hi = _LINES_PER_ORDER
    k = lo + rng.binomial(hi - lo, rng.beta(1.6, 1.525, n_orders)).astype(np.int64)
    diff = total - int(k.sum())
    while diff:
        step = 1 if diff > 0 else -1
        cand = np.flatnonzero(k < hi) if diff > 0 else np.flatnonzero(k > lo)
        pick = rng.choice(cand, min(abs(diff), cand.size), replace=False)
        k[pick] += step
        diff -= step * pick.size
    return k


def _orders(
    rng: np.random.Generator, sizes: dict[str, int], customers: _Customers, products: _Products
) -> tuple[Columns, Columns, IntArray, IntArray]:
    n = sizes["orders"]
    day = _order_days(rng, n)
    active = customers.active
    weights = rng.lognormal(0.0, 0.9, active.size)
    who = np.concatenate([active, rng.choice(active, n - active.size, p=weights / weights.sum())])
    customer = customers.numbers[rng.permutation(who)]

    status = np.full(n, "Shipped", dtype=object)
    scale = n // _BASE_SIZES["orders"]
    quotas = {name: q * scale for name, q in words.STATUS_QUOTAS}
    status[n - quotas["In Process"] :] = "In Process"
    others = [s for s in quotas if s != "In Process"]
    late = np.arange(int(n * 0.3), n - quotas["In Process"])
    picked = rng.choice(late, sum(quotas[s] for s in others), replace=False)
    status[picked] = np.repeat(np.array(others, dtype=object), [quotas[s] for s in others])
    unshipped = (status == "In Process") | (status == "On Hold")
    unshipped |= (status == "Cancelled") & (rng.random(n) < 0.5)
    shipped = np.where(unshipped, -1, day + rng.integers(1, 7, n))
    required = day + rng.integers(5, 11, n)

    comments = np.full(n, None, dtype=object)
    for name, texts in words.COMMENTS_BY_STATUS.items():
        sel = np.flatnonzero(status == name)
        comments[sel] = _pick(rng, texts, sel.size)
    sel = np.flatnonzero((status == "Shipped") & (rng.random(n) < 0.2))
    comments[sel] = _pick(rng, words.COMMENTS_SHIPPED, sel.size)
    sel = np.flatnonzero((status == "Cancelled") & (shipped < 0))
    comments[sel] = _pick(rng, words.COMMENTS_CANCELLED_UNSHIPPED, sel.size)

    numbers = 10100 + np.arange(n)
    dates = _date_strings()
    order_cols: Columns = [
        numbers.tolist(),
        [dates[d] for d in day.tolist()],
        [dates[d] for d in required.tolist()],
        [dates[d] if d >= 0 else None for d in shipped.tolist()],
        status.tolist(),
        comments.tolist(),
        customer.tolist(),
    ]
    details, totals = _order_lines(rng, sizes["orderdetails"], numbers, products)
    return order_cols, details, totals, shipped


def _order_lines(
    rng: np.random.Generator, total: int, numbers: IntArray, products: _Products
) -> tuple[Columns, IntArray]:
    n = numbers.size
    k = _lines_per_order(rng, n, total)
    pool = np.delete(np.arange(products.codes.size), products.never_ordered)
    size = pool.size
    strides = np.array([s for s in range(1, size) if math.gcd(s, size) == 1])
    start = rng.integers(0, size, n)
    stride = strides[rng.integers(0, strides.size, n)]
    order = np.repeat(np.arange(n), k)
    j = np.arange(total) - np.repeat(np.cumsum(k) - k, k)
    product = pool[(start[order] + j * stride[order]) % size]
    sort = np.lexsort((product, order))  # rows by (order, productCode); line numbers permuted
    product, line_no = product[sort], j[sort] + 1
    qty = np.where(rng.random(total) < 0.9, rng.integers(20, 51, total), rng.integers(6, 98, total))
    discount = rng.uniform(0.0, 0.2, total)
    price = np.round(products.msrp_cents[product] * (1.0 - discount)).astype(np.int64)
    totals = np.bincount(order, weights=qty * price, minlength=n).round().astype(np.int64)
    codes = products.codes.astype(object)
    columns: Columns = [numbers[order], codes[product], qty, price / 100, line_no]
    return columns, totals


def _payments(
    rng: np.random.Generator, count: int, orders: Columns, totals: IntArray, shipped: IntArray
) -> Columns:
    status = np.array(orders[4], dtype=object)
    eligible = np.flatnonzero((shipped >= 0) & (status != "Cancelled"))
    paid = rng.choice(eligible, count, replace=False)
    customer = np.array(orders[6], dtype=np.int64)[paid]
    day = np.minimum(shipped[paid] + rng.integers(0, 31, count), _N_DAYS - 1)
    ids = rng.choice(676 * 990_000, count, replace=False)
    letters, digits = np.divmod(ids, 990_000)
    checks = np.array(
        [
            f"{_LETTERS[a // 26]}{_LETTERS[a % 26]}{d + 10_000}"
            for a, d in zip(letters.tolist(), digits.tolist(), strict=True)
        ]
    )
    sort = np.lexsort((checks, customer))
    dates = _date_strings()
    return [
        customer[sort].tolist(),
        checks[sort].tolist(),
        [dates[d] for d in day[sort].tolist()],
        _cents_to_numbers(totals[paid][sort]),
    ]


def _date_strings() -> list[str]:
    return [(_START + timedelta(days=d)).isoformat() for d in range(_N_DAYS + 11)]


# --- writing ------------------------------------------------------------------------------


def _write_sqlite(path: str, tables: dict[str, Columns]) -> None:
    con = sqlite3.connect(path, isolation_level=None)
    try:
        con.execute("PRAGMA journal_mode=OFF")
        con.execute("PRAGMA synchronous=OFF")
        con.execute("BEGIN")
        for table in TABLES:
            con.execute(sqlite_ddl(table))
            marks = ", ".join("?" * len(table.columns))
            sql = f'INSERT INTO "{table.name}" VALUES ({marks})'
            con.executemany(sql, _rows(tables[table.name]))
        con.execute("COMMIT")
        con.execute("PRAGMA journal_mode=DELETE")
        con.execute("PRAGMA synchronous=FULL")
    finally:
        con.close()


def _rows(columns: Columns) -> Iterator[tuple[Any, ...]]:
    """Rows of ``columns``, converting numpy columns to Python values a chunk at a time."""
    for start in range(0, len(columns[0]), _CHUNK):
        parts = [col[start : start + _CHUNK] for col in columns]
        yield from zip(
            *(p.tolist() if isinstance(p, np.ndarray) else p for p in parts), strict=True
        )
