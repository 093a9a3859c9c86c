"""Entry point of the detached process that executes a job run: ``python -m sluice.jobs.worker``."""

from __future__ import annotations

import sys

from sluice.lake.catalog_process import forked_catalog


def main(argv: list[str]) -> int:
    """Run ``ROOT JOB RUN_ID``; the exit code is 0 only when the run SUCCEEDED."""
    root, job, run_id = argv
    with forked_catalog() as catalog:
        from sluice.project import Project

        run = Project.open(root).jobs.execute(job, run_id, catalog=catalog)
    return 0 if run.state == "SUCCEEDED" else 1


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
