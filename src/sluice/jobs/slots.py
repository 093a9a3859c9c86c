"""Schedule slots in ``.sluice/runs.db``: which cron slot of which job was handled, and how.

A slot is claimed (recorded PENDING) before its run is started, so a scheduler that
crashes in between never starts it twice; the next scheduler settles what it finds
PENDING. ``schedules`` remembers since when each schedule is owed its slots.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from sluice.jobs.store import utcnow
from sluice.state import StateDB


class SlotOutcome(enum.StrEnum):
    """What became of a slot."""

    PENDING = "PENDING"
    STARTED = "STARTED"
    SKIPPED = "SKIPPED"
    COALESCED = "COALESCED"


@dataclass(frozen=True)
class HandledSlot:
    """One slot of a job's schedule, as recorded.

    ``into_slot`` is the slot whose run caught up a COALESCED one; ``handled_at`` is the
    wall-clock time it was recorded.
    """

    job: str
    slot: datetime
    outcome: SlotOutcome
    run_id: str | None = None
    reason: str | None = None
    into_slot: datetime | None = None
    handled_at: datetime | None = None


def _iso(moment: datetime) -> str:
    return moment.astimezone(UTC).isoformat(timespec="microseconds")


def _time(text: str | None) -> datetime | None:
    return datetime.fromisoformat(text) if text else None


class SlotStore:
    """The handled slots of one project's schedules."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._db = StateDB(path)

    def owed_since(
        self, job: str, *, cron: str, timezone: str, now: datetime
    ) -> tuple[datetime, bool]:
        """Since when ``job``'s schedule is owed slots, and whether that starts now.

        The first time a schedule is seen, or after its cron or time zone changed, it is
        owed slots from ``now`` on: there is no backfill.
        """
        with self._db.connect() as con:
            con.execute("BEGIN IMMEDIATE")
            row = con.execute(
                "SELECT cron, timezone, since FROM schedules WHERE job = ?", (job,)
            ).fetchone()
            if row is not None and (row[0], row[1]) == (cron, timezone):
                con.execute("COMMIT")
                return datetime.fromisoformat(row[2]), False
            con.execute(
                "INSERT OR REPLACE INTO schedules (job, cron, timezone, since) VALUES (?, ?, ?, ?)",
                (job, cron, timezone, _iso(now)),
            )
            con.execute("COMMIT")
        return now, True

    def claim(self, slots: list[HandledSlot]) -> None:
        """Record slots in one transaction (a slot already recorded is an error)."""
        handled_at = _iso(utcnow())
        with self._db.connect() as con:
            con.execute("BEGIN IMMEDIATE")
            try:
                con.executemany(
                    "INSERT INTO schedule_slots"
                    " (job, slot, outcome, run_id, reason, into_slot, handled_at)"
                    " VALUES (?, ?, ?, ?, ?, ?, ?)",
                    [
                        (
                            s.job,
                            _iso(s.slot),
                            s.outcome.value,
                            s.run_id,
                            s.reason,
                            _iso(s.into_slot) if s.into_slot else None,
                            handled_at,
                        )
                        for s in slots
                    ],
                )
                con.execute("COMMIT")
            except BaseException:
                con.execute("ROLLBACK")
                raise

    def settle(
        self,
        job: str,
        slot: datetime,
        outcome: SlotOutcome,
        *,
        run_id: str | None = None,
        reason: str | None = None,
    ) -> HandledSlot:
        """Record what became of a PENDING slot; slots coalesced into it get its run id."""
        with self._db.connect() as con:
            con.execute("BEGIN IMMEDIATE")
            con.execute(
                "UPDATE schedule_slots SET outcome = ?, run_id = ?, reason = COALESCE(?, reason)"
                " WHERE job = ? AND slot = ? AND outcome = ?",
                (outcome.value, run_id, reason, job, _iso(slot), SlotOutcome.PENDING.value),
            )
            con.execute(
                "UPDATE schedule_slots SET run_id = ? WHERE job = ? AND into_slot = ?",
                (run_id, job, _iso(slot)),
            )
            con.execute("COMMIT")
        return self.slots(job, at=slot)[0]

    def slots(
        self, job: str | None = None, *, at: datetime | None = None, limit: int = 1000
    ) -> list[HandledSlot]:
        """Handled slots (of one job, or at one time), newest first."""
        if not self.path.exists():
            return []
        when = _iso(at) if at else None
        return self._select(
            "WHERE (? IS NULL OR job = ?) AND (? IS NULL OR slot = ?) ORDER BY slot DESC, job"
            " LIMIT ?",
            (job, job, when, when, limit),
        )

    def last(self, job: str) -> HandledSlot | None:
        """The job's latest handled slot."""
        found = self.slots(job, limit=1)
        return found[0] if found else None

    def pending(self) -> list[HandledSlot]:
        """Slots claimed by a scheduler that stopped before settling them."""
        return self._select("WHERE outcome = ? ORDER BY slot", (SlotOutcome.PENDING.value,))

    def _select(self, where: str, parameters: tuple[Any, ...]) -> list[HandledSlot]:
        with self._db.connect() as con:
            cursor = con.execute(f"SELECT * FROM schedule_slots {where}", parameters)
            names = [d[0] for d in cursor.description]
            return [_to_slot(dict(zip(names, row, strict=True))) for row in cursor.fetchall()]


def _to_slot(row: dict[str, Any]) -> HandledSlot:
    return HandledSlot(
        job=row["job"],
        slot=datetime.fromisoformat(row["slot"]),
        outcome=SlotOutcome(row["outcome"]),
        run_id=row["run_id"],
        reason=row["reason"],
        into_slot=_time(row["into_slot"]),
        handled_at=_time(row["handled_at"]),
    )
