"""Run one command; write its wall time, peak RSS and exit code to RESULT_FILE.

Usage: python -I -S bench/spawn_measured.py RESULT_FILE COMMAND [ARG ...]

Why a separate launcher: on Linux a child's ru_maxrss starts at the RSS high-water mark of the
process that spawned it (the kernel folds the old address space's peak in at exec). Spawned
straight from the harness, every contender would report at least the harness's own peak (duckdb,
rich, ...). This launcher stays tiny (about 8 MiB with -I -S and only the os/time modules), so
that is the floor instead. The figures come from os.wait4 on the contender's process: its own
peak RSS, or that of any descendant it waited for if larger (the max, not a sum).

RESULT_FILE gets one line: "<wall s> <ru_maxrss KiB> <exit code> <user+system CPU s>" (exit
code negative when killed by a signal, 127 when the command could not be started).
"""

import os
import sys
import time


def main(argv: list[str]) -> int:
    if len(argv) < 2:
        sys.stderr.write("usage: spawn_measured.py RESULT_FILE COMMAND [ARG ...]\n")
        return 2
    result_file, command = argv[0], argv[1:]
    start = time.perf_counter()
    try:
        pid = os.posix_spawnp(command[0], command, os.environ)
    except OSError as exc:
        sys.stderr.write(f"cannot start {command[0]}: {exc}\n")
        wall, max_rss_kib, exit_code, cpu = time.perf_counter() - start, 0, 127, 0.0
    else:
        _, status, usage = os.wait4(pid, 0)
        wall, max_rss_kib = time.perf_counter() - start, usage.ru_maxrss
        exit_code = os.waitstatus_to_exitcode(status)
        cpu = usage.ru_utime + usage.ru_stime
    with open(result_file, "w") as out:
        out.write(f"{wall:.6f} {max_rss_kib} {exit_code} {cpu:.6f}\n")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
