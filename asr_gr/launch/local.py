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
import sys
import threading
import time
from pathlib import Path

from asr_gr.launch.jobs import JobArray, JobsFailed

GRACE_S = 2.0


class Interrupted(Exception):
    """The driver got SIGINT/SIGTERM; ``signum`` says which."""

    def __init__(self, signum: int):
        self.signum = signum
        super().__init__(f"interrupted by {signal.Signals(signum).name}")


class _Guard:
    """Signals raise :class:`Interrupted`, except inside ``with guard.deferred():`` (e.g. between starting a
    job and recording it, so no job escapes the clean-up), where they are raised at its end."""

    def __init__(self):
        self.depth = 0
        self.pending = None

    def handler(self, signum, frame):
        if self.depth:
            self.pending = signum
        else:
            raise Interrupted(signum)

    @contextlib.contextmanager
    def deferred(self):
        self.depth += 1
        try:
            yield
        finally:
            self.depth -= 1
        if not self.depth and self.pending is not None:
            signum, self.pending = self.pending, None
            raise Interrupted(signum)


@contextlib.contextmanager
def interrupts_raise():
    """Inside the block SIGINT and SIGTERM raise :class:`Interrupted` (so ``finally`` clauses clean up);
    yields a guard whose ``deferred()`` holds them back over a critical section."""
    guard = _Guard()
    old = {s: signal.signal(s, guard.handler) for s in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield guard
    finally:
        for s, h in old.items():
            signal.signal(s, h)


def kill_groups(procs: list[subprocess.Popen]) -> None:
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


def _tee(src, fh, echo) -> threading.Thread:
    def copy():
        while True:
            chunk = os.read(src.fileno(), 65536)
            if not chunk:
                break
            fh.buffer.write(chunk)
            fh.flush()
            with contextlib.suppress(OSError, ValueError):
                echo.write(chunk)
                echo.flush()
    t = threading.Thread(target=copy, daemon=True)
    t.start()
    return t


def run_local(array: JobArray, max_jobs_run: int | None = None, poll_s: float = 0.05,
              env: dict | None = None, echo: bool = False) -> None:
    """Run every job of ``array``; return when all succeeded, else raise :class:`JobsFailed`
    (or :class:`Interrupted`) after the other jobs were terminated. ``echo``: a job's output goes to
    this process's stderr too (for a single job, e.g. training, whose progress one wants to see)."""
    max_jobs_run = max(1, max_jobs_run or os.cpu_count() or 1)
    pending = list(array.ids)
    running: dict[int, tuple[subprocess.Popen, object, float]] = {}
    failed: list[tuple[int, Path, int]] = []
    teeing: dict[int, threading.Thread] = {}
    with interrupts_raise() as guard:
        try:
            while pending or running:
                while pending and len(running) < max_jobs_run and not failed:
                    with guard.deferred():  # a started job is always in `running`, for the clean-up
                        j = pending.pop(0)
                        cmd, log = array.command(j), array.log_of(j)
                        log.parent.mkdir(parents=True, exist_ok=True)
                        fh = open(log, "w", encoding="utf-8")
                        fh.write(f"# {cmd}\n# Started at {_stamp()}\n#\n")
                        fh.flush()
                        p = subprocess.Popen(["bash", "-c", cmd], stdin=subprocess.DEVNULL,
                                             stdout=subprocess.PIPE if echo else fh, stderr=subprocess.STDOUT,
                                             start_new_session=True, env=env)
                        if echo:
                            teeing[j] = _tee(p.stdout, fh, sys.stderr.buffer)
                        running[j] = (p, fh, time.monotonic())
                for j, (p, fh, t0) in list(running.items()):
                    code = p.poll()
                    if code is None:
                        continue
                    if j in teeing:
                        teeing.pop(j).join(timeout=5)
                    fh.write(f"# Accounting: time={time.monotonic() - t0:.0f} threads=1\n"
                             f"# Ended (code {code}) at {_stamp()}, elapsed time {time.monotonic() - t0:.0f} seconds\n")
                    fh.close()
                    del running[j]
                    if code != 0:
                        failed.append((j, array.log_of(j), code))
                        with contextlib.suppress(ProcessLookupError, PermissionError):
                            os.killpg(p.pid, signal.SIGKILL)  # what the failed job left running
                if failed:
                    break
                time.sleep(poll_s)
        finally:
            procs = [p for p, _, _ in running.values()]
            kill_groups(procs)
            for j, (p, fh, _) in running.items():
                if not fh.closed:
                    fh.write(f"# Ended (terminated by the driver) at {_stamp()}\n")
                    fh.close()
    if failed:
        raise JobsFailed(sorted(failed), len(array.ids), "local", cancelled=bool(running) or bool(pending))
