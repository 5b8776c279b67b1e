"""The local backend (``utils/run.pl``): a job array as processes on this machine.

At most ``max_jobs_run`` jobs run at once (default: the number of cores). Each job runs ``bash -c
<command>`` in its own process group, stdout and stderr to its log, framed as Kaldi frames it (``#
<command>``, ``# Started at``, ``# Accounting: time=..``, ``# Ended (code N) at``). The first failure
terminates the other jobs' process groups (SIGTERM, then SIGKILL after a grace period) and raises
:class:`JobsFailed`; so do SIGINT and SIGTERM to the driver (which then exits with 130/143).
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import time
from pathlib import Path

from asr_gr.launch.jobs import JobArray, JobsFailed

GRACE_S = 2.0


class Interrupted(Exception):
    """The driver got SIGINT/SIGTERM; ``signum`` says which."""

    def __init__(self, signum: int):
        self.signum = signum
        super().__init__(f"interrupted by {signal.Signals(signum).name}")


@contextlib.contextmanager
def interrupts_raise():
    """Inside the block SIGINT and SIGTERM raise :class:`Interrupted` (so ``finally`` clauses clean up)."""

    def handler(signum, frame):
        raise Interrupted(signum)

    old = {s: signal.signal(s, handler) for s in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield
    finally:
        for s, h in old.items():
            signal.signal(s, h)


def _kill_groups(procs: list[subprocess.Popen]) -> None:
    alive = [p for p in procs if p.poll() is None]
    for p in alive:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(p.pid, signal.SIGTERM)
    deadline = time.monotonic() + GRACE_S
    for p in alive:
        with contextlib.suppress(subprocess.TimeoutExpired):
            p.wait(timeout=max(0.0, deadline - time.monotonic()))
    for p in alive:
        if p.poll() is None:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(p.pid, signal.SIGKILL)
            p.wait()
    for p in procs:  # a job's leftover children (e.g. its workers) go with it
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(p.pid, signal.SIGKILL)


def _stamp() -> str:
    return time.strftime("%a %b %d %H:%M:%S %Z %Y")


def run_local(array: JobArray, max_jobs_run: int | None = None, poll_s: float = 0.05,
              env: dict | None = None) -> None:
    """Run every job of ``array``; return when all succeeded, else raise :class:`JobsFailed`
    (or :class:`Interrupted`) after the other jobs were terminated."""
    max_jobs_run = max(1, max_jobs_run or os.cpu_count() or 1)
    pending = list(array.ids)
    running: dict[int, tuple[subprocess.Popen, object, float]] = {}
    failed: list[tuple[int, Path, int]] = []
    with interrupts_raise():
        try:
            while pending or running:
                while pending and len(running) < max_jobs_run and not failed:
                    j = pending.pop(0)
                    cmd, log = array.command(j), array.log_of(j)
                    log.parent.mkdir(parents=True, exist_ok=True)
                    fh = open(log, "w", encoding="utf-8")
                    fh.write(f"# {cmd}\n# Started at {_stamp()}\n#\n")
                    fh.flush()
                    p = subprocess.Popen(["bash", "-c", cmd], stdin=subprocess.DEVNULL, stdout=fh,
                                         stderr=subprocess.STDOUT, start_new_session=True, env=env)
                    running[j] = (p, fh, time.monotonic())
                for j, (p, fh, t0) in list(running.items()):
                    code = p.poll()
                    if code is None:
                        continue
                    fh.write(f"# Accounting: time={time.monotonic() - t0:.0f} threads=1\n"
                             f"# Ended (code {code}) at {_stamp()}, elapsed time {time.monotonic() - t0:.0f} seconds\n")
                    fh.close()
                    del running[j]
                    if code != 0:
                        failed.append((j, array.log_of(j), code))
                if failed:
                    break
                time.sleep(poll_s)
        finally:
            procs = [p for p, _, _ in running.values()]
            _kill_groups(procs)
            for j, (p, fh, _) in running.items():
                if not fh.closed:
                    fh.write(f"# Ended (terminated by the driver) at {_stamp()}\n")
                    fh.close()
    if failed:
        raise JobsFailed(sorted(failed), len(array.ids), "local", cancelled=bool(running) or bool(pending))
