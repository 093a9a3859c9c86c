"""Live activity on a classicmodels source, so the pipeline meets a moving system.

Every second of the simulation places new orders with their lines and takes payments. On
request it also ships orders (status and shippedDate), changes product prices and cancels
orders (``updates``); removes cancelled orders with their lines and some payments
(``deletes``); changes the schema once, half way (``drift``: a new ``loyaltyTier`` column on
customers and, on servers, a wider ``customers.city``); and makes the source unavailable
for a while (``outage_seconds``): a server's other sessions are closed again and again, a
SQLite file is locked exclusively. Each step is one transaction; the same seed gives the
same choices.
"""

from __future__ import annotations

import contextlib
import random
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import date, timedelta
from decimal import Decimal
from pathlib import Path

from sluice.errors import ConfigError
from sluice.sources.dbapi import Database, open_database

STEP_SECONDS = 0.25
DRIFT_COLUMN = "loyaltyTier"


@dataclass(frozen=True)
class Activity:
    """What to simulate, how fast and for how long."""

    orders_per_minute: float = 60.0
    duration_seconds: float = 60.0
    updates: bool = False
    deletes: bool = False
    drift: bool = False
    outage_seconds: float = 0.0
    seed: int = 1

    def __post_init__(self) -> None:
        if self.orders_per_minute < 0 or self.duration_seconds <= 0 or self.outage_seconds < 0:
            raise ConfigError(
                "Simulation rates and durations must be positive.",
                hint="Use e.g. --orders-per-minute 120 --duration 30.",
            )
        if self.outage_seconds >= self.duration_seconds:
            raise ConfigError(
                f"An outage of {self.outage_seconds:g} s does not fit in a "
                f"{self.duration_seconds:g} s simulation.",
                hint="Make --duration longer than --outage.",
            )


@dataclass
class SimulationReport:
    """What the simulation did to the source."""

    orders: int = 0
    order_lines: int = 0
    payments: int = 0
    shipped: int = 0
    price_changes: int = 0
    cancelled: int = 0
    deleted_orders: int = 0
    deleted_payments: int = 0
    schema_changes: list[str] = field(default_factory=list)
    sessions_closed: int = 0
    outage_seconds: float = 0.0


def simulate(
    url: str,
    activity: Activity,
    *,
    base_dir: Path,
    clock: Callable[[], float] = time.monotonic,
    sleep: Callable[[float], None] = time.sleep,
    today: date | None = None,
) -> SimulationReport:
    """Apply ``activity`` to the classicmodels database at ``url`` until its duration ends."""
    db = open_database(url, base_dir=base_dir)
    sim = _Simulator(db, activity, today or date.today())
    try:
        started = clock()
        outage_pending = activity.outage_seconds > 0
        while (elapsed := clock() - started) < activity.duration_seconds:
            if outage_pending and elapsed >= activity.duration_seconds / 3:
                outage_pending = False
                sim.outage(until=clock() + activity.outage_seconds, clock=clock, sleep=sleep)
                continue
            sim.step(elapsed)
            sleep(min(STEP_SECONDS, max(0.0, activity.duration_seconds - (clock() - started))))
        sim.step(activity.duration_seconds)
    finally:
        db.close()
    return sim.report


class _Simulator:
    def __init__(self, db: Database, activity: Activity, today: date) -> None:
        self.db = db
        self.activity = activity
        self.today = today
        self.random = random.Random(activity.seed)
        self.report = SimulationReport()
        self.drifted = False
        q = db.quote
        self.customers = [
            r[0] for r in db.execute(f"SELECT {q('customerNumber')} FROM {q('customers')}")
        ]
        self.products = [
            (code, Decimal(str(msrp)))
            for code, msrp in db.execute(
                f"SELECT {q('productCode')}, {q('MSRP')} FROM {q('products')}"
            )
        ]
        if not self.customers or not self.products:
            raise ConfigError(
                f"{db.url} has no customers or products to simulate orders for.",
                hint="Load the classicmodels data first: sluice source generate --into URL.",
            )

    def step(self, elapsed: float) -> None:
        """Catch up with the activity due by ``elapsed`` seconds, in one transaction."""
        due = int(self.activity.orders_per_minute * elapsed / 60)
        while self.report.orders < due:
            self._new_order()
        if self.activity.updates:
            self._updates()
        if self.activity.deletes:
            self._deletes()
        if (
            self.activity.drift
            and not self.drifted
            and elapsed >= self.activity.duration_seconds / 2
        ):
            self._drift()
        self.db.commit()

    def outage(
        self, *, until: float, clock: Callable[[], float], sleep: Callable[[float], None]
    ) -> None:
        """Keep the source unavailable to everyone else until ``until``."""
        started = clock()
        if self.db.dialect == "sqlite":
            self.db.con.execute("BEGIN EXCLUSIVE")
            try:
                sleep(max(0.0, until - clock()))
            finally:
                self.db.con.rollback()
        else:
            while clock() < until:
                self.report.sessions_closed += self._close_other_sessions()
                sleep(0.05)
        self.report.outage_seconds += clock() - started

    def _close_other_sessions(self) -> int:
        if self.db.dialect == "mysql":
            ids = self.db.execute(
                "SELECT ID FROM information_schema.PROCESSLIST "
                "WHERE DB = DATABASE() AND ID <> CONNECTION_ID()"
            )
            for (session,) in ids:
                # The session may have ended meanwhile.
                with contextlib.suppress(Exception):
                    self.db.execute(f"KILL {int(session)}")
            return len(ids)
        rows = self.db.execute(
            "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity "
            "WHERE datname = current_database() AND pid <> pg_backend_pid()"
        )
        self.db.commit()
        return int(rows[0][0]) if rows else 0

    def _new_order(self) -> None:
        db, q, r = self.db, self.db.quote, self.random
        (last,) = db.execute(f"SELECT max({q('orderNumber')}) FROM {q('orders')}")[0]
        number = int(last or 10000) + 1
        customer = r.choice(self.customers)
        db.execute(
            f"INSERT INTO {q('orders')} ({q('orderNumber')}, {q('orderDate')}, "
            f"{q('requiredDate')}, {q('shippedDate')}, {q('status')}, {q('comments')}, "
            f"{q('customerNumber')}) VALUES (?, ?, ?, NULL, 'In Process', NULL, ?)",
            (number, self.today, self.today + timedelta(days=7), customer),
        )
        total = Decimal(0)
        lines = r.sample(self.products, k=min(len(self.products), r.randint(1, 4)))
        for line, (code, msrp) in enumerate(lines, start=1):
            quantity = r.randint(10, 50)
            price = (msrp * Decimal(r.randint(80, 100)) / 100).quantize(Decimal("0.01"))
            total += price * quantity
            db.execute(
                f"INSERT INTO {q('orderdetails')} ({q('orderNumber')}, {q('productCode')}, "
                f"{q('quantityOrdered')}, {q('priceEach')}, {q('orderLineNumber')}) "
                "VALUES (?, ?, ?, ?, ?)",
                (number, code, quantity, price, line),
            )
        db.execute(
            f"INSERT INTO {q('payments')} ({q('customerNumber')}, {q('checkNumber')}, "
            f"{q('paymentDate')}, {q('amount')}) VALUES (?, ?, ?, ?)",
            (customer, f"SIM{number:08d}", self.today, total.quantize(Decimal("0.01"))),
        )
        self.report.orders += 1
        self.report.order_lines += len(lines)
        self.report.payments += 1

    def _updates(self) -> None:
        db, q, r = self.db, self.db.quote, self.random
        waiting = db.execute(
            f"SELECT {q('orderNumber')} FROM {q('orders')} WHERE {q('status')} = 'In Process' "
            f"ORDER BY {q('orderNumber')}"
        )
        for (number,) in waiting[: r.randint(0, 2)]:
            db.execute(
                f"UPDATE {q('orders')} SET {q('status')} = 'Shipped', {q('shippedDate')} = ? "
                f"WHERE {q('orderNumber')} = ?",
                (self.today, number),
            )
            self.report.shipped += 1
        if waiting and r.random() < 0.2:
            (number,) = r.choice(waiting)
            db.execute(
                f"UPDATE {q('orders')} SET {q('status')} = 'Cancelled' "
                f"WHERE {q('orderNumber')} = ? AND {q('status')} = 'In Process'",
                (number,),
            )
            self.report.cancelled += 1
        if r.random() < 0.3:
            code, msrp = r.choice(self.products)
            new_msrp = (msrp * Decimal(r.randint(95, 105)) / 100).quantize(Decimal("0.01"))
            db.execute(
                f"UPDATE {q('products')} SET {q('MSRP')} = ? WHERE {q('productCode')} = ?",
                (new_msrp, code),
            )
            self.products = [(c, new_msrp if c == code else m) for c, m in self.products]
            self.report.price_changes += 1

    def _deletes(self) -> None:
        db, q, r = self.db, self.db.quote, self.random
        cancelled = db.execute(
            f"SELECT {q('orderNumber')} FROM {q('orders')} WHERE {q('status')} = 'Cancelled'"
        )
        if cancelled and r.random() < 0.5:
            (number,) = r.choice(cancelled)
            for table in ("orderdetails", "orders"):
                db.execute(f"DELETE FROM {q(table)} WHERE {q('orderNumber')} = ?", (number,))
            self.report.deleted_orders += 1
        if r.random() < 0.1:
            payment = db.execute(
                f"SELECT {q('customerNumber')}, {q('checkNumber')} FROM {q('payments')} "
                f"ORDER BY {q('paymentDate')}, {q('checkNumber')} LIMIT 1"
            )
            if payment:
                db.execute(
                    f"DELETE FROM {q('payments')} WHERE {q('customerNumber')} = ? "
                    f"AND {q('checkNumber')} = ?",
                    payment[0],
                )
                self.report.deleted_payments += 1

    def _drift(self) -> None:
        db, q = self.db, self.db.quote
        self.drifted = True
        if db.has_column("customers", DRIFT_COLUMN):
            self.report.schema_changes.append(f"customers.{DRIFT_COLUMN} was already there")
            return
        db.execute(f"ALTER TABLE {q('customers')} ADD COLUMN {q(DRIFT_COLUMN)} varchar(10)")
        db.execute(
            f"UPDATE {q('customers')} SET {q(DRIFT_COLUMN)} = "
            f"CASE WHEN {q('creditLimit')} > 100000 THEN 'Gold' ELSE 'Silver' END"
        )
        self.report.schema_changes.append(f"customers.{DRIFT_COLUMN} added (varchar(10))")
        if db.dialect == "mysql":
            db.execute(f"ALTER TABLE {q('customers')} MODIFY {q('city')} varchar(80) NOT NULL")
        elif db.dialect == "postgresql":
            db.execute(f"ALTER TABLE {q('customers')} ALTER COLUMN {q('city')} TYPE varchar(80)")
        if db.dialect != "sqlite":
            self.report.schema_changes.append("customers.city widened to varchar(80)")
