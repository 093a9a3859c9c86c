"""The server process: URL on start, request log, clean stop on signals, a taken port."""

from __future__ import annotations

import signal
import socket
import subprocess
import sys
import time

import pytest

from sluice.project import Project
from sluice.query.history import QueryState
from tests.conftest import sluice_cli
from tests.serve.conftest import SLOW_SQL, Server


@pytest.mark.parametrize("stop_signal", [signal.SIGINT, signal.SIGTERM], ids=["int", "term"])
def test_a_signal_stops_the_server_cleanly_and_cancels_running_queries(
    served_project: Project, stop_signal: signal.Signals
) -> None:
    server = Server(served_project.root, "--timeout", "60")
    assert server.url.startswith("http://127.0.0.1:")
    assert str(served_project.root) in server.banner
    query_id = server.start(SLOW_SQL)["query_id"]
    assert server.rows("SELECT count(*) FROM dim_date") == [
        [served_project.query("SELECT count(*) FROM dim_date").table.column(0)[0].as_py()]
    ]
    while server.request("GET", f"/v1/queries/{query_id}").json()["state"] != "RUNNING":
        time.sleep(0.05)

    started = time.monotonic()
    assert server.stop(stop_signal) == 0
    assert time.monotonic() - started < 15
    log = "".join(server.log)
    assert '"POST /v1/queries HTTP/1.1" 202' in log
    assert f'"GET /v1/queries/{query_id} HTTP/1.1" 200' in log
    assert "Application shutdown complete." in log
    assert "Stopped.\n" in server.log
    assert "Traceback" not in log
    assert served_project.query_history.get(query_id).state == QueryState.CANCELLED
    with pytest.raises(OSError):
        socket.create_connection(("127.0.0.1", int(server.url.rsplit(":", 1)[1])), timeout=1)


def test_a_taken_port_is_a_one_line_error(served_project: Project) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        result = sluice_cli("serve", "--port", port, "-p", served_project.root, timeout=60)
    assert result.returncode == 1
    assert result.stderr.startswith(f"Error: Cannot listen on 127.0.0.1:{port}")
    assert "--port" in result.stderr and "Traceback" not in result.stderr


def test_invalid_limits_are_refused_before_listening(served_project: Project) -> None:
    result = sluice_cli("serve", "--memory-limit", "lots", "-p", served_project.root)
    assert result.returncode == 2
    assert "Invalid memory limit 'lots'" in result.stderr
    assert result.stdout == ""


def test_the_cli_loads_no_web_framework_until_serve_runs() -> None:
    code = (
        "import sys, sluice.cli.app, sluice.project; "
        "print(sorted(m for m in ('fastapi', 'uvicorn', 'starlette') if m in sys.modules))"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=60
    )
    assert result.stdout.strip() == "[]"


def test_limits_come_from_the_project_file_and_flags_override_them(project: Project) -> None:
    assert project.run_job("etl").state == "SUCCEEDED"
    config = project.root / "sluice.yml"
    config.write_text(
        config.read_text() + "serve:\n  port: 0\n  queries:\n    max_rows: 3\n    workers: 2\n"
    )
    for args, cap in [((), 3), (("--max-rows", "5"), 5)]:
        server = Server(project.root, *args)
        try:
            execution = server.wait(server.start("SELECT range FROM range(10)")["query_id"])
            assert (execution["rows"], execution["truncated"]) == (cap, True)
        finally:
            assert server.stop() == 0
    config.write_text(config.read_text() + "    threads: 0\n")
    broken = sluice_cli("serve", "-p", project.root)
    assert broken.returncode == 2
    assert "serve.queries.threads" in broken.stderr
