"""The catalog process: a run's catalog writes made in a forked child, with the same results,
errors and logs as in the run's own process, and never outliving it.

Forking needs a process with one thread, which a pytest worker is not, so each case runs a
short script in a fresh interpreter.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import psutil
import pytest

from sluice.lake.catalog_process import InProcess, forked_catalog
from sluice.project import Project
from tests.conftest import sluice_cli
from tests.jobs.helpers import lake_totals, source_totals


def _script(code: str, *, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code)],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
        env={**os.environ, **(env or {})},
    )


LAKE = """
import json, logging, os, sys
from pathlib import Path
from sluice.core import TableName
from sluice.lake.catalog import Lake
from sluice.lake.catalog_process import CatalogProcess
root = Path(sys.argv[1]) if len(sys.argv) > 1 else Path({root!r})
lake = Lake(catalog_uri=f"sqlite:///{{root}}/catalog.db", warehouse=root / "warehouse")
process = CatalogProcess.fork()
assert process is not None
"""


def test_calls_run_in_the_child_and_return_their_results(tmp_path: Path) -> None:
    done = _script(
        LAKE.format(root=str(tmp_path))
        + """
seen = []
class Keep(logging.Handler):
    def emit(self, record):
        seen.append((record.name, record.levelname, record.getMessage()))
logging.getLogger().addHandler(Keep())
logging.getLogger().setLevel(logging.INFO)
child = process.call(os.getpid)
process.call(lake.prepare, {"raw", "gold"})
process.call(logging.getLogger("sluice.lake.catalog").warning, "from %s", "the child")
print(json.dumps({
    "parent": os.getpid(),
    "child": child,
    "databases": lake.databases(),
    "logs": seen,
}))
process.close()
try:
    os.waitpid(process.pid, os.WNOHANG)
    reaped = False
except ChildProcessError:
    reaped = True
print(json.dumps({"reaped": reaped}))
"""
    )
    assert done.returncode == 0, done.stderr
    first, second = (json.loads(line) for line in done.stdout.splitlines())
    assert isinstance(first["child"], int)
    assert first["child"] != first["parent"]
    assert first["databases"] == ["gold", "raw"]
    assert first["logs"] == [["sluice.lake.catalog", "WARNING", "from the child"]]
    assert second == {"reaped": True}


def test_errors_come_back_with_their_class_message_and_hint(tmp_path: Path) -> None:
    done = _script(
        LAKE.format(root=str(tmp_path))
        + """
from sluice.errors import NotFoundError, LakeError
out = {}
try:
    process.call(lake.load, TableName("raw", "nope"))
except NotFoundError as exc:
    out["not_found"] = [exc.message, exc.hint, any("catalog process" in n for n in exc.__notes__)]
import functools
try:
    process.call(functools.partial(exec, "class L(Exception): pass\\nraise L('cannot travel')"))
except LakeError as exc:
    out["unpicklable"] = exc.message
import threading
try:
    process.call(threading.Lock)
except LakeError as exc:
    out["unsendable"] = exc.message
out["still_serving"] = process.call(os.getpid) != os.getpid()
print(json.dumps(out))
process.close()
"""
    )
    assert done.returncode == 0, done.stderr
    out = json.loads(done.stdout)
    message, hint, noted = out["not_found"]
    assert message == "Table raw.nope does not exist."
    assert hint == "List tables with 'sluice catalog tables'."
    assert noted
    assert out["unpicklable"] == "L: cannot travel"
    assert out["unsendable"].startswith("Unsendable result: cannot pickle '_thread.lock'")
    assert out["still_serving"] is True


def test_a_call_interrupted_in_the_parent_ends_the_conversation(tmp_path: Path) -> None:
    done = _script(
        LAKE.format(root=str(tmp_path))
        + """
import signal, time
from sluice.errors import LakeError
def interrupt(signum, frame):
    raise KeyboardInterrupt
signal.signal(signal.SIGALRM, interrupt)
signal.setitimer(signal.ITIMER_REAL, 0.2)
try:
    process.call(time.sleep, 1)
except KeyboardInterrupt:
    pass
try:
    process.call(os.getpid)
except LakeError as exc:
    print(exc.message)
process.close()
"""
    )
    assert done.returncode == 0, done.stderr
    assert "stopped answering after an interrupted call" in done.stdout


def test_the_child_dies_with_its_parent(tmp_path: Path) -> None:
    done = _script(
        LAKE.format(root=str(tmp_path))
        + """
print(process.pid, flush=True)
os.kill(os.getpid(), 9)
"""
    )
    assert done.returncode == -signal.SIGKILL
    child = int(done.stdout.strip())
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline and _alive(child):
        time.sleep(0.05)
    assert not _alive(child)


def _alive(pid: int) -> bool:
    try:
        return psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False


def test_a_failpoint_in_the_child_kills_the_parent_first(tmp_path: Path) -> None:
    done = _script(
        LAKE.format(root=str(tmp_path))
        + """
from sluice.observe.failpoints import failpoint
print(process.pid, flush=True)
process.call(failpoint, "in-commit:raw.orders")
print("survived", flush=True)
""",
        env={"SLUICE_FAILPOINTS": "in-commit:raw.orders"},
    )
    assert done.returncode == -signal.SIGKILL
    assert "survived" not in done.stdout


def test_no_child_when_switched_off_or_other_threads_run() -> None:
    done = _script(
        """
import json, threading
from sluice.lake.catalog_process import CatalogProcess
off = CatalogProcess.fork()
import os
os.environ.pop("SLUICE_CATALOG_PROCESS")
stop = threading.Event()
thread = threading.Thread(target=stop.wait)
thread.start()
threaded = CatalogProcess.fork()
stop.set()
thread.join()
print(json.dumps([off is None, threaded is None]))
""",
        env={"SLUICE_CATALOG_PROCESS": "0"},
    )
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout) == [True, True]


def test_switched_off_the_calls_run_here(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SLUICE_CATALOG_PROCESS", "0")
    with forked_catalog() as catalog:
        assert isinstance(catalog, InProcess)
        assert catalog.call(os.getpid) == os.getpid()


@pytest.mark.slow
def test_a_cli_run_makes_every_catalog_write_in_its_catalog_process(project: Project) -> None:
    wrapper = """
import json, os, sys
from sluice.lake import catalog_process
made = []
original = catalog_process.CatalogProcess.call
def call(self, fn, *args, **kwargs):
    made.append(fn.__name__)
    return original(self, fn, *args, **kwargs)
catalog_process.CatalogProcess.call = call
parent = os.getpid()
real_exit = os._exit
def leave(code):
    if os.getpid() == parent:
        print(json.dumps({"calls": made, "pyiceberg": "pyiceberg" in sys.modules}))
        sys.stdout.flush()
    real_exit(code)
os._exit = leave
from sluice.cli import main
sys.argv = ["sluice", "job", "start", "etl", "--wait", "--quiet", "--project", sys.argv[1]]
main()
"""
    done = subprocess.run(
        [sys.executable, "-c", wrapper, str(project.root)],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout.splitlines()[-1])
    calls = report["calls"]
    assert calls[0] == "open_if_present"
    assert calls.count("prepare") == 1
    assert calls.index("prepare") < calls.index("commit")
    assert calls.count("commit") == 14
    # fact_orders (an incremental model) has its last build read here, from the metadata.
    assert "summary" not in calls and "cursor" not in calls
    assert calls[-2:] == ["publish", "recent_runs"]
    assert report["pyiceberg"] is False
    assert project.jobs.runs("etl")[0].state == "SUCCEEDED"
    published = {str(t) for t in project.publications.current()}
    assert len(published) == 14
    assert published == {str(t.table) for t in project.lake.tables()}
    assert lake_totals(project) == source_totals(project)


@pytest.mark.slow
def test_a_cli_run_that_fails_before_writing_leaves_no_catalog(project: Project) -> None:
    source = project.config.sources["classicmodels"].url.removeprefix("sqlite:///")
    Path(source).unlink()
    done = sluice_cli("job", "start", "etl", "--wait", "--quiet", "--project", project.root)
    assert done.returncode == 4
    assert done.stderr.startswith("Error: Source file ")
    assert len(done.stderr.strip().splitlines()) == 1
    assert project.jobs.runs("etl")[0].state == "FAILED"
    assert not (project.root / ".sluice" / "catalog.db").exists()
    assert not (project.root / "warehouse").exists()
