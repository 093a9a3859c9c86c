"""Change data capture in the source: a change log table filled by triggers.

``enable_cdc`` creates ``_sluice_changes`` (``seq``, ``table_name``, ``op`` I/U/D, ``pk``, a
JSON object of the changed row's primary key, ``changed_at`` in UTC) and, per table, AFTER
INSERT/UPDATE/DELETE row triggers that append to it; an update that changes the key also
logs the old key as deleted. The log only records keys: a run reads the current rows of the
keys changed since its last position, so the log stays small and raw keeps the source's
exact types (a row image would travel through JSON). ``disable_cdc`` drops the triggers and
the log. The first row of a log (op ``E``) holds a random token, its epoch: a position in
one log means nothing in a log created later.

``log_position`` is where a run reads up to. Sequence numbers are taken when a row is
logged, not when its transaction commits, so on a server a reader that sees sequence 11
may not see 10 yet. SQLite has one writer at a time, so it never happens there. On MariaDB
the position is read under ``LOCK TABLES _sluice_changes READ``, which waits for every open
transaction that wrote to the log (writers wait for that instant; the user needs the LOCK
TABLES privilege). On PostgreSQL, where a lock that waits for writers needs a write
privilege, each change records its transaction id, and the position also lists the
transactions its snapshot saw open: the next run reads their changes too, whatever their
sequence numbers.
"""

from __future__ import annotations

import contextlib
import json
import re
import secrets
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

from sluice.errors import SourceError, did_you_mean
from sluice.sources.dbapi import Database, open_database

CHANGE_LOG = "_sluice_changes"
TRIGGER_PREFIX = "_sluice_cdc_"
EPOCH_OP = "E"
CAPTURED_OP = "T"  # one row per captured table, written by enable_cdc
CHANGE_OPS = ("I", "U", "D")
TRUNCATE_OP = "X"  # PostgreSQL: a TRUNCATE of the table (MySQL fires no trigger for one)
_POSITION = re.compile(r"([0-9a-f]+):(\d+)(?::(\d+(?:,\d+)*))?")
LOCK_TIMEOUT_SECONDS = 60
WRITE_PRIVILEGES_HINT = (
    "CDC needs write privileges in the source (CREATE, TRIGGER, DROP): run it as the "
    "database owner or grant them."
)
_PRIVILEGE_TROUBLE = ("denied", "permission", "must be owner", "privilege", "readonly", "read-only")


@dataclass(frozen=True)
class CdcTable:
    """A source table whose changes are captured, by its primary key."""

    name: str
    primary_key: tuple[str, ...]


@dataclass(frozen=True)
class LogPosition:
    """How far a change log goes: its epoch token, the last sequence number, and (PostgreSQL)
    the transactions still open then, whose changes may have smaller sequence numbers."""

    epoch: str
    seq: int
    pending: tuple[int, ...] = ()

    def cursor(self) -> str:
        """The text committed as the raw table's cursor.

        >>> LogPosition("3fa9", 42).cursor(), LogPosition("3fa9", 42, (917, 920)).cursor()
        ('3fa9:42', '3fa9:42:917,920')
        """
        pending = f":{','.join(map(str, self.pending))}" if self.pending else ""
        return f"{self.epoch}:{self.seq}{pending}"

    @classmethod
    def parse(cls, value: str | None) -> LogPosition | None:
        """Read a committed cursor back (None for none, or a cursor of another kind).

        >>> LogPosition.parse("3fa9:42:917,920")
        LogPosition(epoch='3fa9', seq=42, pending=(917, 920))
        >>> LogPosition.parse("3fa9:42"), LogPosition.parse("2026-01-01 00:00:00")
        (LogPosition(epoch='3fa9', seq=42, pending=()), None)
        """
        found = _POSITION.fullmatch(value or "")
        if found is None:
            return None
        epoch, seq, pending = found.groups()
        return cls(epoch, int(seq), tuple(int(p) for p in (pending or "").split(",") if p))


def enable_cdc(url: str, tables: Sequence[str], *, base_dir: Path) -> list[CdcTable]:
    """Create the change log (if missing) and the triggers of ``tables`` (replacing their
    own earlier ones); refuse a table without a primary key. Idempotent."""
    if not tables:
        raise SourceError(
            "No tables to capture changes of.",
            hint="Name them with --tables, or list them under jobs.<job>.cdc in sluice.yml.",
        )
    db = open_database(url, base_dir=base_dir)
    try:
        dialect = _dialect(db)
        existing = [t for t in dialect.tables() if t != CHANGE_LOG]
        captured = []
        for name in tables:
            if name not in existing:
                raise SourceError(
                    f"Source table '{name}' does not exist.{did_you_mean(name, existing)}"
                )
            key = dialect.primary_key(name)
            if not key:
                raise SourceError(
                    f"Source table {name} has no primary key, so its changes cannot be "
                    "applied by key.",
                    hint=f"Add a primary key to {name}, or load it without CDC.",
                )
            captured.append(CdcTable(name, key))
        with _privileges_explained(db, "create the change log and its triggers"):
            dialect.create_log()
            for table in captured:
                for statement in dialect.trigger_ddl(table):
                    db.execute(statement)
                dialect.register(table)
            db.commit()
        return captured
    finally:
        db.close()


def disable_cdc(url: str, *, base_dir: Path) -> list[str]:
    """Drop every change capture trigger and the change log; return the tables that had
    triggers. Idempotent."""
    db = open_database(url, base_dir=base_dir)
    try:
        dialect = _dialect(db)
        triggered = dialect.triggers()
        with _privileges_explained(db, "drop the change log and its triggers"):
            for trigger, table in triggered:
                for statement in dialect.drop_ddl(trigger, table):
                    db.execute(statement)
            dialect.drop_log()
            db.commit()
        return sorted({table for _, table in triggered})
    finally:
        db.close()


def captured_tables(url: str, *, base_dir: Path) -> list[str]:
    """The source tables whose changes are captured now."""
    db = open_database(url, base_dir=base_dir)
    try:
        return sorted({table for _, table in _dialect(db).triggers()})
    finally:
        db.close()


def log_position(url: str, tables: Sequence[str], *, base_dir: Path) -> LogPosition:
    """The change log's epoch and last committed sequence number; refused when the changes
    of one of ``tables`` are not captured."""
    db = open_database(url, base_dir=base_dir)
    try:
        dialect = _dialect(db)
        missing = sorted(set(tables) - dialect.captured()) if dialect.has_log() else []
        if missing or not dialect.has_log():
            raise SourceError(
                f"Changes of source table {(missing or list(tables))[0]} are not captured: "
                f"no change log or no triggers (see {CHANGE_LOG}).",
                hint=f"Run 'sluice source enable-cdc --tables {','.join(missing or tables)}'.",
            )
        rows = db.execute(
            f"SELECT pk FROM {CHANGE_LOG} WHERE op = '{EPOCH_OP}' ORDER BY seq LIMIT 1"
        )
        if not rows:
            raise SourceError(
                f"The change log {CHANGE_LOG} has lost its first row.",
                hint="Recreate it: 'sluice source disable-cdc', then 'sluice source enable-cdc'.",
            )
        with _privileges_explained(
            db,
            f"read where the change log {CHANGE_LOG} ends",
            hint="Grant it SELECT on the log, and on MariaDB/MySQL the LOCK TABLES privilege.",
        ):
            seq, pending = dialect.position()
        db.commit()
        return LogPosition(str(rows[0][0]), seq, pending)
    finally:
        db.close()


def trim_log(
    url: str, applied: Sequence[LogPosition], *, base_dir: Path, dry_run: bool = False
) -> int:
    """Delete the changes every position in ``applied`` is past: those at or below the
    lowest position, except (PostgreSQL) the changes of transactions a position lists as
    pending. Positions of another epoch are ignored. Returns how many changes were (with
    ``dry_run``, would be) deleted."""
    db = open_database(url, base_dir=base_dir)
    try:
        dialect = _dialect(db)
        if not dialect.has_log():
            raise SourceError(
                f"The source has no change log ({CHANGE_LOG}); there is nothing to trim.",
                hint="Enable capture first: 'sluice source enable-cdc'.",
            )
        rows = db.execute(
            f"SELECT pk FROM {CHANGE_LOG} WHERE op = '{EPOCH_OP}' ORDER BY seq LIMIT 1"
        )
        epoch = str(rows[0][0]) if rows else None
        current = [p for p in applied if p.epoch == epoch]
        if not current:
            return 0
        ops = ", ".join(f"'{op}'" for op in (*CHANGE_OPS, TRUNCATE_OP))
        where = f"op IN ({ops}) AND seq <= {min(p.seq for p in current)}"
        pending = sorted({xid for p in current for xid in p.pending})
        if pending:
            where += f" AND xid NOT IN ({', '.join(map(str, pending))})"
        with _privileges_explained(db, f"delete from the change log {CHANGE_LOG}"):
            count = int(db.execute(f"SELECT count(*) FROM {CHANGE_LOG} WHERE {where}")[0][0])
            if not dry_run and count:
                db.execute(f"DELETE FROM {CHANGE_LOG} WHERE {where}")
            db.commit()
        return count
    finally:
        db.close()


@contextlib.contextmanager
def _privileges_explained(
    db: Database, doing: str, hint: str = WRITE_PRIVILEGES_HINT
) -> Iterator[None]:
    """Roll back on failure, and say so when the failure is a lack of privileges."""
    try:
        yield
    except SourceError as exc:
        db.con.rollback()
        if any(word in exc.message.lower() for word in _PRIVILEGE_TROUBLE):
            raise SourceError(
                f"The source's user may not {doing}: {exc.message}",
                hint=hint,
            ) from exc
        raise
    except BaseException:
        db.con.rollback()
        raise


def open_transactions(snapshot: str) -> tuple[int, ...]:
    """The transactions a PostgreSQL snapshot (``xmin:xmax:xip,...``) sees as still open.

    >>> open_transactions("917:921:917,920"), open_transactions("921:921:")
    ((917, 920), ())
    """
    listed = snapshot.split(":")[2] if snapshot.count(":") == 2 else ""
    return tuple(int(x) for x in listed.split(",") if x)


def _dialect(db: Database) -> _Dialect:
    kinds: dict[str, type[_Dialect]] = {
        "sqlite": _Sqlite,
        "mysql": _Mysql,
        "postgresql": _Postgres,
    }
    return kinds[db.dialect](db)


def _trigger_name(table: str, suffix: str = "") -> str:
    """The name of a capture trigger.

    >>> _trigger_name("orders", "_ins")
    '_sluice_cdc_orders_ins'
    """
    return f"{TRIGGER_PREFIX}{table}{suffix}"


class _Dialect:
    """What differs between SQLite, MariaDB and PostgreSQL."""

    def __init__(self, db: Database) -> None:
        self.db = db
        self.q = db.quote

    def tables(self) -> list[str]:
        raise NotImplementedError

    def primary_key(self, table: str) -> tuple[str, ...]:
        raise NotImplementedError

    def triggers(self) -> list[tuple[str, str]]:
        """(trigger, table) of every capture trigger."""
        raise NotImplementedError

    def log_ddl(self) -> str:
        raise NotImplementedError

    #: The JSON object function, the NULL-safe equality and what a FROM-less SELECT needs.
    json_object = "json_object"
    null_safe_equal = "IS"
    no_table = ""

    def trigger_ddl(self, table: CdcTable) -> list[str]:
        """One trigger per event (SQLite and MariaDB; PostgreSQL has its own)."""
        name, key, q = table.name, table.primary_key, self.q
        literal = "'" + name.replace("'", "''") + "'"
        insert = f"INSERT INTO {CHANGE_LOG} (table_name, op, pk) SELECT {literal}, "
        new, old = (self._key_object(row, key, self.json_object) for row in ("NEW", "OLD"))
        changed = " OR ".join(f"NOT (OLD.{q(k)} {self.null_safe_equal} NEW.{q(k)})" for k in key)
        bodies = {
            "_ins": ("INSERT", f"{insert}'I', {new}{self.no_table};"),
            "_upd": (
                "UPDATE",
                f"{insert}'U', {new}{self.no_table}; "
                f"{insert}'D', {old}{self.no_table} WHERE {changed};",
            ),
            "_del": ("DELETE", f"{insert}'D', {old}{self.no_table};"),
        }
        statements = []
        for suffix, (event, body) in bodies.items():
            trigger = q(_trigger_name(name, suffix))
            statements.append(f"DROP TRIGGER IF EXISTS {trigger}")
            statements.append(
                f"CREATE TRIGGER {trigger} AFTER {event} ON {q(name)} FOR EACH ROW BEGIN {body} END"
            )
        return statements

    def drop_ddl(self, trigger: str, table: str) -> list[str]:
        return [f"DROP TRIGGER IF EXISTS {self.q(trigger)}"]

    def position(self) -> tuple[int, tuple[int, ...]]:
        """The last sequence number of a committed change, and the transactions that may
        still add changes below it."""
        return self._max_seq(), ()

    def has_log(self) -> bool:
        return CHANGE_LOG in self.tables()

    def create_log(self) -> None:
        self.db.execute(self.log_ddl())
        if not self.db.execute(f"SELECT 1 FROM {CHANGE_LOG} WHERE op = '{EPOCH_OP}'"):
            self.db.execute(
                f"INSERT INTO {CHANGE_LOG} (table_name, op, pk) VALUES ('', '{EPOCH_OP}', ?)",
                (secrets.token_hex(8),),
            )

    def drop_log(self) -> None:
        self.db.execute(f"DROP TABLE IF EXISTS {CHANGE_LOG}")

    def register(self, table: CdcTable) -> None:
        """Record in the log that ``table`` is captured (readable without privileges on
        triggers)."""
        registered = f"SELECT 1 FROM {CHANGE_LOG} WHERE op = '{CAPTURED_OP}' AND table_name = ?"
        if not self.db.execute(registered, (table.name,)):
            self.db.execute(
                f"INSERT INTO {CHANGE_LOG} (table_name, op, pk) VALUES (?, '{CAPTURED_OP}', ?)",
                (table.name, json.dumps(list(table.primary_key))),
            )

    def captured(self) -> set[str]:
        """Tables registered in the log whose triggers are in place."""
        return self._registered() & {table for _, table in self.triggers()}

    def _registered(self) -> set[str]:
        rows = self.db.execute(f"SELECT table_name FROM {CHANGE_LOG} WHERE op = '{CAPTURED_OP}'")
        return {str(r[0]) for r in rows}

    def _max_seq(self) -> int:
        rows = self.db.execute(f"SELECT max(seq) FROM {CHANGE_LOG}")
        return int(rows[0][0] or 0) if rows else 0

    def _key_object(self, row: str, key: Sequence[str], function: str) -> str:
        pairs = ", ".join(f"'{name}', {row}.{self.q(name)}" for name in key)
        return f"{function}({pairs})"


class _Sqlite(_Dialect):
    def tables(self) -> list[str]:
        rows = self.db.execute(
            "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%'"
        )
        return sorted(str(r[0]) for r in rows)

    def primary_key(self, table: str) -> tuple[str, ...]:
        rows = self.db.execute(f"PRAGMA table_info({self.q(table)})")
        return tuple(str(r[1]) for r in sorted((r for r in rows if r[5]), key=lambda r: r[5]))

    def triggers(self) -> list[tuple[str, str]]:
        rows = self.db.execute("SELECT name, tbl_name FROM sqlite_master WHERE type = 'trigger'")
        return [(str(n), str(t)) for n, t in rows if str(n).startswith(TRIGGER_PREFIX)]

    def log_ddl(self) -> str:
        return (
            f"CREATE TABLE IF NOT EXISTS {CHANGE_LOG} (seq INTEGER PRIMARY KEY AUTOINCREMENT, "
            "table_name TEXT NOT NULL, op TEXT NOT NULL, pk TEXT NOT NULL, changed_at TEXT NOT "
            "NULL DEFAULT (strftime('%Y-%m-%d %H:%M:%f', 'now')))"
        )

    def drop_log(self) -> None:
        super().drop_log()
        if self.db.execute("SELECT 1 FROM sqlite_master WHERE name = 'sqlite_sequence'"):
            self.db.execute("DELETE FROM sqlite_sequence WHERE name = ?", (CHANGE_LOG,))


class _Mysql(_Dialect):
    json_object = "JSON_OBJECT"
    null_safe_equal = "<=>"
    no_table = " FROM DUAL"

    def tables(self) -> list[str]:
        rows = self.db.execute(
            "SELECT TABLE_NAME FROM information_schema.TABLES WHERE TABLE_SCHEMA = DATABASE() "
            "AND TABLE_TYPE = 'BASE TABLE'"
        )
        return sorted(str(r[0]) for r in rows)

    def primary_key(self, table: str) -> tuple[str, ...]:
        rows = self.db.execute(
            "SELECT COLUMN_NAME FROM information_schema.KEY_COLUMN_USAGE WHERE TABLE_SCHEMA = "
            "DATABASE() AND TABLE_NAME = ? AND CONSTRAINT_NAME = 'PRIMARY' "
            "ORDER BY ORDINAL_POSITION",
            (table,),
        )
        return tuple(str(r[0]) for r in rows)

    def triggers(self) -> list[tuple[str, str]]:
        rows = self.db.execute(
            "SELECT TRIGGER_NAME, EVENT_OBJECT_TABLE FROM information_schema.TRIGGERS "
            "WHERE TRIGGER_SCHEMA = DATABASE()"
        )
        return [(str(n), str(t)) for n, t in rows if str(n).startswith(TRIGGER_PREFIX)]

    def log_ddl(self) -> str:
        return (
            f"CREATE TABLE IF NOT EXISTS {CHANGE_LOG} (seq BIGINT AUTO_INCREMENT PRIMARY KEY, "
            "table_name VARCHAR(64) NOT NULL, op CHAR(1) NOT NULL, pk TEXT NOT NULL, "
            "changed_at DATETIME(6) NOT NULL DEFAULT (UTC_TIMESTAMP(6))) ENGINE = InnoDB"
        )

    def captured(self) -> set[str]:
        # information_schema.TRIGGERS only shows triggers to users allowed to create them.
        return self._registered()

    def position(self) -> tuple[int, tuple[int, ...]]:
        self.db.execute(f"SET SESSION lock_wait_timeout = {LOCK_TIMEOUT_SECONDS}")
        self.db.execute(f"LOCK TABLES {CHANGE_LOG} READ")
        try:
            return self._max_seq(), ()
        finally:
            self.db.execute("UNLOCK TABLES")


class _Postgres(_Dialect):
    def tables(self) -> list[str]:
        rows = self.db.execute(
            "SELECT table_name FROM information_schema.tables WHERE table_schema = "
            "current_schema() AND table_type = 'BASE TABLE'"
        )
        return sorted(str(r[0]) for r in rows)

    def primary_key(self, table: str) -> tuple[str, ...]:
        # pg_catalog, not information_schema: that hides the keys of tables a user only reads.
        rows = self.db.execute(
            "SELECT a.attname FROM pg_constraint k JOIN pg_class c ON c.oid = k.conrelid "
            "JOIN pg_namespace n ON n.oid = c.relnamespace JOIN pg_attribute a ON "
            "a.attrelid = k.conrelid AND a.attnum = ANY (k.conkey) WHERE k.contype = 'p' "
            "AND n.nspname = current_schema() AND c.relname = ? "
            "ORDER BY array_position(k.conkey, a.attnum)",
            (table,),
        )
        return tuple(str(r[0]) for r in rows)

    def triggers(self) -> list[tuple[str, str]]:
        rows = self.db.execute(
            "SELECT t.tgname, c.relname FROM pg_trigger t JOIN pg_class c ON c.oid = t.tgrelid "
            "JOIN pg_namespace n ON n.oid = c.relnamespace "
            "WHERE n.nspname = current_schema() AND NOT t.tgisinternal"
        )
        return [(str(n), str(t)) for n, t in rows if str(n).startswith(TRIGGER_PREFIX)]

    def _schema(self) -> str:
        return self.q(str(self.db.execute("SELECT current_schema()")[0][0]))

    def log_ddl(self) -> str:
        return (
            f"CREATE TABLE IF NOT EXISTS {self._schema()}.{CHANGE_LOG} (seq bigserial PRIMARY "
            "KEY, table_name text NOT NULL, op char(1) NOT NULL, pk text NOT NULL, changed_at "
            "timestamp NOT NULL DEFAULT (clock_timestamp() AT TIME ZONE 'UTC'), "
            "xid bigint NOT NULL DEFAULT CAST(CAST(pg_current_xact_id() AS text) AS bigint))"
        )

    def trigger_ddl(self, table: CdcTable) -> list[str]:
        name, key, q = table.name, table.primary_key, self.q
        schema = self._schema()
        function = f"{schema}.{q(_trigger_name(name))}"
        insert = f"INSERT INTO {schema}.{CHANGE_LOG} (table_name, op, pk)"
        new, old = (self._key_object(row, key, "json_build_object") for row in ("NEW", "OLD"))
        literal = "'" + name.replace("'", "''") + "'"
        old_key = ", ".join(f"OLD.{q(k)}" for k in key)
        new_key = ", ".join(f"NEW.{q(k)}" for k in key)
        body = (
            "BEGIN IF TG_OP <> 'DELETE' THEN "
            f"{insert} VALUES ({literal}, left(TG_OP, 1), {new}::text); END IF; "
            f"IF TG_OP = 'DELETE' OR (TG_OP = 'UPDATE' AND ROW({old_key}) IS DISTINCT FROM "
            f"ROW({new_key})) THEN "
            f"{insert} VALUES ({literal}, 'D', {old}::text); END IF; RETURN NULL; END"
        )
        trigger = q(_trigger_name(name))
        truncated = q(_trigger_name(name, "_truncate"))
        return [
            f"CREATE OR REPLACE FUNCTION {function}() RETURNS trigger LANGUAGE plpgsql "
            f"AS $sluice$ {body} $sluice$",
            f"DROP TRIGGER IF EXISTS {trigger} ON {schema}.{q(name)}",
            f"CREATE TRIGGER {trigger} AFTER INSERT OR UPDATE OR DELETE ON {schema}.{q(name)} "
            f"FOR EACH ROW EXECUTE FUNCTION {function}()",
            f"CREATE OR REPLACE FUNCTION {schema}.{truncated}() RETURNS trigger "
            f"LANGUAGE plpgsql AS $sluice$ BEGIN {insert} VALUES ({literal}, '{TRUNCATE_OP}', "
            "'{}'); RETURN NULL; END $sluice$",
            f"DROP TRIGGER IF EXISTS {truncated} ON {schema}.{q(name)}",
            f"CREATE TRIGGER {truncated} AFTER TRUNCATE ON {schema}.{q(name)} "
            f"FOR EACH STATEMENT EXECUTE FUNCTION {schema}.{truncated}()",
        ]

    def drop_ddl(self, trigger: str, table: str) -> list[str]:
        schema = self._schema()
        return [
            f"DROP TRIGGER IF EXISTS {self.q(trigger)} ON {schema}.{self.q(table)}",
            f"DROP FUNCTION IF EXISTS {schema}.{self.q(trigger)}()",
        ]

    def position(self) -> tuple[int, tuple[int, ...]]:
        rows = self.db.execute(
            f"SELECT max(seq), CAST(pg_current_snapshot() AS text) FROM {CHANGE_LOG}"
        )
        seq, snapshot = rows[0]
        return int(seq or 0), open_transactions(str(snapshot))
