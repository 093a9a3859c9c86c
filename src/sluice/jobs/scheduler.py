"""The scheduler: starts each job at the slots of its cron schedule, once per slot.

``Scheduler.tick()`` handles every slot that came due since the last one handled and
returns what it did; the clock is a callable, so tests drive it over simulated time.
Each slot is recorded (``sluice.jobs.slots``) before its run starts, so a restart never
runs a slot twice, and slots missed while no scheduler ran are recorded too: under
``missed: run_once`` one catch-up run stands for them, under ``missed: skip`` they are
skipped with a warning. ``run_scheduler`` loops ``tick`` under a lock until a signal.
"""

from __future__ import annotations

import logging
import signal
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from types import FrameType
from zoneinfo import ZoneInfo

from sluice.config import ProjectConfig, ScheduleConfig
from sluice.errors import ConfigError, JobError, SluiceError
from sluice.jobs.service import JobService
from sluice.jobs.slots import HandledSlot, SlotOutcome, SlotStore
from sluice.jobs.store import utcnow
from sluice.lock import ProcessLock

log = logging.getLogger("sluice.scheduler")
Clock = Callable[[], datetime]
DEFAULT_GRACE = timedelta(seconds=60)
DEFAULT_TICK_SECONDS = 30.0
MAX_SLOTS_PER_TICK = 1000


def slots_after(
    schedule: ScheduleConfig, after: datetime, *, until: datetime, limit: int | None = None
) -> list[datetime]:
    """The schedule's slots in ``(after, until]``, in UTC, oldest first; only the latest
    ``limit`` of them when a limit is given.

    >>> s = ScheduleConfig(cron="0 * * * *")
    >>> t = datetime(2026, 1, 1, 9, 30, tzinfo=UTC)
    >>> [x.hour for x in slots_after(s, t, until=t + timedelta(hours=3))]
    [10, 11, 12]
    >>> [x.hour for x in slots_after(s, t, until=t + timedelta(hours=3), limit=2)]
    [11, 12]
    """
    from croniter import croniter

    found: list[datetime] = []
    zone = ZoneInfo(schedule.timezone)
    it = croniter(schedule.cron, (until + timedelta(microseconds=1)).astimezone(zone))
    while limit is None or len(found) < limit:
        slot = it.get_prev(datetime).astimezone(UTC)
        if slot <= after:
            break
        found.append(slot)
    return found[::-1]


def next_slots(schedule: ScheduleConfig, after: datetime, count: int) -> list[datetime]:
    """The next ``count`` slots after ``after``, in the schedule's time zone."""
    from croniter import croniter

    it = croniter(schedule.cron, after.astimezone(ZoneInfo(schedule.timezone)))
    return [it.get_next(datetime) for _ in range(count)]


@dataclass(frozen=True)
class ScheduleStatus:
    """A job's schedule: its next slots and the last one handled."""

    job: str
    schedule: ScheduleConfig
    next_slots: list[datetime]
    last: HandledSlot | None


class Scheduler:
    """Starts the scheduled jobs of one project through its ``JobService``.

    A slot more than ``grace`` old when handled counts as missed.
    """

    def __init__(
        self,
        config: ProjectConfig,
        jobs: JobService,
        slots: SlotStore,
        *,
        now: Clock = utcnow,
        grace: timedelta = DEFAULT_GRACE,
    ) -> None:
        self.config = config
        self.jobs = jobs
        self.slots = slots
        self.now = now
        self.grace = grace

    @property
    def schedules(self) -> dict[str, ScheduleConfig]:
        """The jobs that have a schedule."""
        return {
            name: job.schedule
            for name, job in sorted(self.config.jobs.items())
            if job.schedule is not None
        }

    def tick(self) -> list[HandledSlot]:
        """Handle every slot due by now; return the slots handled, oldest first."""
        now = self.now()
        handled = self._settle_pending()
        for name, schedule in self.schedules.items():
            handled.extend(self._tick_job(name, schedule, now))
        return handled

    def seconds_to_next(self) -> float | None:
        """Seconds from now to the earliest next slot of any schedule."""
        now = self.now()
        upcoming = [next_slots(s, now, 1)[0] for s in self.schedules.values()]
        return min((s - now).total_seconds() for s in upcoming) if upcoming else None

    def status(self, *, count: int = 3) -> list[ScheduleStatus]:
        """Each scheduled job's next ``count`` slots and its last handled slot."""
        now = self.now()
        return [
            ScheduleStatus(name, schedule, next_slots(schedule, now, count), self.slots.last(name))
            for name, schedule in self.schedules.items()
        ]

    def _tick_job(self, name: str, schedule: ScheduleConfig, now: datetime) -> list[HandledSlot]:
        since, fresh = self.slots.owed_since(
            name, cron=schedule.cron, timezone=schedule.timezone, now=now
        )
        if fresh:
            log.info(
                "Job %s: schedule '%s' (%s) starts at %s; earlier slots are not owed.",
                name,
                schedule.cron,
                schedule.timezone,
                _shown(now),
            )
        last = self.slots.last(name)
        cursor = max(since, last.slot) if last else since
        due = slots_after(schedule, cursor, until=now, limit=MAX_SLOTS_PER_TICK + 1)
        if not due:
            return []
        if len(due) > MAX_SLOTS_PER_TICK:
            due = due[1:]
            log.warning(
                "Job %s: more than %d slots were missed between %s and %s; the slots before %s "
                "are not recorded one by one.",
                name,
                MAX_SLOTS_PER_TICK,
                _shown(cursor),
                _shown(now),
                _shown(due[0]),
            )
        latest: datetime | None = due[-1]
        missed = due[:-1]
        late = now - due[-1] > self.grace
        if schedule.missed == "skip" and late:
            latest, missed = None, due
        records = self._record_missed(name, schedule, missed, latest) if missed else []
        if latest is not None:
            if late and not missed:
                log.warning(
                    "Job %s: slot %s was missed (no scheduler was running); catching up now "
                    "(missed: run_once).",
                    name,
                    _shown(latest),
                )
            records.append(self._start(name, latest, catching_up=len(missed) + int(late)))
        return records

    def _record_missed(
        self, name: str, schedule: ScheduleConfig, missed: list[datetime], latest: datetime | None
    ) -> list[HandledSlot]:
        span = f"{len(missed)} slot(s) from {_shown(missed[0])} to {_shown(missed[-1])}"
        if schedule.missed == "skip":
            log.warning(
                "Job %s: %s were missed (no scheduler was running); skipped, as "
                "schedule.missed is skip.",
                name,
                span,
            )
            reason = "missed: no scheduler was running; skipped (missed: skip)"
            records = [HandledSlot(name, s, SlotOutcome.SKIPPED, reason=reason) for s in missed]
        else:
            assert latest is not None
            log.warning(
                "Job %s: %s were missed (no scheduler was running); one catch-up run for "
                "slot %s stands for them (missed: run_once).",
                name,
                span,
                _shown(latest),
            )
            reason = f"missed: caught up by the run of slot {_shown(latest)} (missed: run_once)"
            records = [
                HandledSlot(name, s, SlotOutcome.COALESCED, reason=reason, into_slot=latest)
                for s in missed
            ]
        self.slots.claim(records)
        return records

    def _start(self, name: str, slot: datetime, *, catching_up: int) -> HandledSlot:
        reason = f"catch-up run for {catching_up} missed slot(s)" if catching_up else None
        self.slots.claim([HandledSlot(name, slot, SlotOutcome.PENDING, reason=reason)])
        busy = self.jobs.active(name)
        if busy:
            why = f"run {busy[0].run_id} of job {name} was still {busy[0].state.value}"
            log.warning("Job %s: slot %s skipped: %s.", name, _shown(slot), why)
            return self.slots.settle(name, slot, SlotOutcome.SKIPPED, reason=why)
        try:
            run = self.jobs.start(name)
        except JobError as exc:
            log.warning("Job %s: slot %s skipped: %s", name, _shown(slot), exc.message)
            return self.slots.settle(name, slot, SlotOutcome.SKIPPED, reason=exc.message)
        log.info("Job %s: slot %s started run %s.", name, _shown(slot), run.run_id)
        return self.slots.settle(name, slot, SlotOutcome.STARTED, run_id=run.run_id)

    def _settle_pending(self) -> list[HandledSlot]:
        """Settle slots a scheduler claimed but stopped before settling: link the run it
        started, if any, else record the slot as skipped."""
        settled: list[HandledSlot] = []
        for slot in self.slots.pending():
            claimed = slot.handled_at or slot.slot
            runs = (
                [r for r in self.jobs.runs(slot.job, limit=20) if r.started_at >= claimed]
                if slot.job in self.config.jobs
                else []
            )
            if runs:
                run = runs[-1]
                log.info(
                    "Job %s: slot %s had started run %s before the scheduler stopped.",
                    slot.job,
                    _shown(slot.slot),
                    run.run_id,
                )
                settled.append(
                    self.slots.settle(slot.job, slot.slot, SlotOutcome.STARTED, run_id=run.run_id)
                )
                continue
            why = "the scheduler stopped after claiming the slot, before starting its run"
            log.warning("Job %s: slot %s skipped: %s.", slot.job, _shown(slot.slot), why)
            settled.append(self.slots.settle(slot.job, slot.slot, SlotOutcome.SKIPPED, reason=why))
        return settled


def _shown(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


def run_scheduler(
    scheduler: Scheduler,
    *,
    lock_path: Path,
    tick_seconds: float = DEFAULT_TICK_SECONDS,
    on_ready: Callable[[], None] | None = None,
    stop: threading.Event | None = None,
) -> None:
    """Tick ``scheduler`` until SIGINT or SIGTERM (or ``stop`` is set), holding the lock.

    It wakes at the next slot, and at least every ``tick_seconds``. Runs it started go
    on after it stops.
    """
    if not scheduler.schedules:
        raise ConfigError(
            "No job in sluice.yml has a schedule; there is nothing to run.",
            hint="Add one, e.g. jobs.etl.schedule: {cron: '*/15 * * * *'}.",
        )
    if tick_seconds <= 0:
        raise ConfigError(f"--tick-seconds must be positive, got {tick_seconds:g}.")
    stop = stop or threading.Event()
    lock = ProcessLock(
        lock_path,
        what=f"scheduler for {lock_path.parent.parent}",
        hint="Stop it first; one scheduler per project.",
    )
    with lock, _stop_on_signals(stop):
        log.info(
            "Scheduling %s (lock %s).",
            ", ".join(f"{n} '{s.cron}' {s.timezone}" for n, s in scheduler.schedules.items()),
            lock_path,
        )
        if on_ready is not None:
            on_ready()
        while not stop.is_set():
            try:
                scheduler.tick()
            except SluiceError as exc:
                log.error("Tick failed: %s; trying again at the next tick.", exc)
            wait = scheduler.seconds_to_next()
            stop.wait(tick_seconds if wait is None else min(tick_seconds, max(wait, 0.05)))
    log.info("Scheduler stopped.")


@contextmanager
def _stop_on_signals(stop: threading.Event) -> Iterator[None]:
    """Set ``stop`` on SIGINT and SIGTERM (in the main thread; elsewhere do nothing)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def handler(signum: int, frame: FrameType | None) -> None:
        log.info("Got %s; stopping.", signal.Signals(signum).name)
        stop.set()

    handled = (signal.SIGINT, signal.SIGTERM)
    previous = {sig: signal.signal(sig, handler) for sig in handled}
    try:
        yield
    finally:
        for sig, item in previous.items():
            signal.signal(sig, item)
