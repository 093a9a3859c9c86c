"""A real ``sluice serve`` in a subprocess, and a small HTTP client for it (urllib)."""

from __future__ import annotations

import json
import os
import queue
import signal
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from sluice.project import Project
from tests.conftest import new_project

SERVER_ARGS = ("--timeout", "4", "--max-rows", "5000", "--workers", "4", "--threads", "1")
SLOW_SQL = "SELECT count(*) FROM range(3000000000) AS a(x), range(10) AS b(y) WHERE a.x % 7 = b.y"


@dataclass
class Reply:
    """An HTTP response: status, headers and body."""

    status: int
    headers: dict[str, str]
    body: bytes

    def json(self) -> Any:
        assert self.headers.get("content-type", "").startswith("application/json"), self.headers
        return json.loads(self.body)


class Server:
    """``sluice serve --port 0`` for a project, stopped with SIGTERM."""

    def __init__(self, root: Path, *args: str, env: dict[str, str] | None = None) -> None:
        self.process = subprocess.Popen(
            [sys.executable, "-m", "sluice", "serve", "--port", "0", "-p", str(root), *args],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env={**os.environ, "COLUMNS": "200", **(env or {})},
        )
        self.log: list[str] = []
        self.lines: queue.Queue[str] = queue.Queue()
        lines = self.lines
        assert self.process.stdout is not None and self.process.stderr is not None
        self._drains = [
            threading.Thread(target=self._drain, args=(self.process.stderr,), daemon=True),
            threading.Thread(target=self._drain, args=(self.process.stdout, lines), daemon=True),
        ]
        for thread in self._drains:
            thread.start()
        try:
            self.banner = lines.get(timeout=60)
        except queue.Empty:
            self.stop(signal.SIGKILL)
            raise AssertionError("the server printed no URL: " + "".join(self.log)) from None
        assert " is serving " in self.banner, self.banner
        self.url = self.banner.split(" at ", 1)[1].split()[0]

    def _drain(self, stream: Any, lines: queue.Queue[str] | None = None) -> None:
        for line in stream:
            self.log.append(line)
            if lines is not None:
                lines.put(line)

    def log_has(self, text: str) -> bool:
        """True when a line the server printed or logged contains ``text``."""
        return any(text in line for line in list(self.log))

    def request(
        self,
        method: str,
        path: str,
        body: object | None = None,
        *,
        headers: dict[str, str] | None = None,
        raw: bytes | None = None,
    ) -> Reply:
        """Send one request; HTTP errors are returned, not raised."""
        data = raw if raw is not None else (None if body is None else json.dumps(body).encode())
        request = urllib.request.Request(
            self.url + path,
            data=data,
            method=method,
            headers={"Content-Type": "application/json", **(headers or {})},
        )
        try:
            with urllib.request.urlopen(request, timeout=60) as response:
                return Reply(response.status, _lower(response.headers), response.read())
        except urllib.error.HTTPError as error:
            with error:
                return Reply(error.code, _lower(error.headers), error.read())

    def start(self, sql: str, **fields: object) -> dict[str, Any]:
        """POST a query; return the execution (asserting it was accepted)."""
        reply = self.request("POST", "/v1/queries", {"sql": sql, **fields})
        assert reply.status == 202, reply.body
        execution: dict[str, Any] = reply.json()
        return execution

    def wait(self, query_id: str, timeout: float = 60) -> dict[str, Any]:
        """Poll (long-polling) until the execution ends."""
        deadline = time.monotonic() + timeout
        while True:
            reply = self.request("GET", f"/v1/queries/{query_id}?wait=5")
            assert reply.status == 200, reply.body
            execution: dict[str, Any] = reply.json()
            if execution["state"] in ("SUCCEEDED", "FAILED", "CANCELLED"):
                return execution
            assert time.monotonic() < deadline, execution

    def rows(self, sql: str, **fields: object) -> list[list[Any]]:
        """Run a query to the end and return all its rows (every JSON page)."""
        execution = self.wait(self.start(sql, **fields)["query_id"])
        assert execution["state"] == "SUCCEEDED", (execution["error"], execution)
        rows: list[list[Any]] = []
        token = ""
        while True:
            suffix = f"?next_token={token}" if token else ""
            page = self.request("GET", f"/v1/queries/{execution['query_id']}/results{suffix}")
            assert page.status == 200, page.body
            body = page.json()
            rows.extend(body["rows"])
            token = body["next_token"]
            if not token:
                return rows

    def stop(self, how: signal.Signals = signal.SIGTERM) -> int:
        """Send a signal (SIGTERM: as a service manager would); return the exit code."""
        if self.process.poll() is None:
            self.process.send_signal(how)
        try:
            return self.process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.process.kill()
            raise
        finally:
            self.process.wait()
            for thread in self._drains:
                thread.join(timeout=10)
            for stream in (self.process.stdout, self.process.stderr):
                if stream is not None:
                    stream.close()


def _lower(headers: Any) -> dict[str, str]:
    return {k.lower(): v for k, v in headers.items()}


@pytest.fixture(scope="session")
def served_project(
    tmp_path_factory: pytest.TempPathFactory, source_db: Callable[[int], Path]
) -> Project:
    """A scale-1 project after one ETL run, for the serve tests only (they add history)."""
    proj = new_project(tmp_path_factory.mktemp("served"), source_db(1))
    run = proj.run_job("etl")
    assert run.state == "SUCCEEDED", run.error
    return proj


@pytest.fixture(scope="session")
def server(served_project: Project) -> Iterator[Server]:
    """One server on ``served_project`` with a 4 s timeout and a 5,000-row cap."""
    running = Server(served_project.root, *SERVER_ARGS)
    yield running
    assert running.stop() == 0, "".join(running.log)
