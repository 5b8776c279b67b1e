"""A Python function over parts, in worker processes, where the first failure ends the run.

``multiprocessing.Pool`` waits forever when a worker dies (SIGKILL, out of memory) and hangs when an
exception cannot be rebuilt in the parent. ``concurrent.futures.ProcessPoolExecutor`` notices a dead
worker (``BrokenProcessPool``) and hands exceptions back; on the first failure the other workers are
killed, and the error goes up: the worker's own (a DataError survives pickling), or one line naming
the part whose worker died.
"""

from __future__ import annotations

import contextlib
import multiprocessing
import os
import signal
from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait
from concurrent.futures.process import BrokenProcessPool
from typing import Callable, Sequence

from tqdm import tqdm

from asr_gr.launch.jobs import describe_exit


class WorkerDied(RuntimeError):
    """A worker process ended without an answer (killed by a signal, out of memory, os._exit)."""


def _kill_workers(procs) -> None:
    """SIGKILL to each worker's process group: the worker and what it started (e.g. a wav.scp pipe)."""
    for p in procs:
        with contextlib.suppress(Exception):
            os.killpg(p.pid, signal.SIGKILL)
        with contextlib.suppress(Exception):
            p.kill()
    for p in procs:
        with contextlib.suppress(Exception):
            p.join(timeout=5)


def _seen_workers(ex: ProcessPoolExecutor, known: list) -> list:
    """``known`` and the pool's current worker processes, once each. Spawn/forkserver pools start their
    workers in a manager thread after submit(), and a broken pool forgets them: callers keep the list."""
    current = (getattr(ex, "_processes", None) or {}).values()
    return list({p.pid: p for p in [*known, *current]}.values())


def run_parts(fn: Callable, items: Sequence, nj: int, start_method: str = "fork", what: str = "part",
              desc: str | None = None) -> list:
    """``[fn(x) for x in items]`` with ``nj`` worker processes, results in order (a tqdm bar when ``desc``).
    The first exception (or worker death) kills the other workers and is raised; nothing waits for the
    rest."""
    if nj <= 1 or len(items) <= 1:
        return [fn(x) for x in items]
    if start_method not in multiprocessing.get_all_start_methods():
        start_method = "spawn"
    ctx = multiprocessing.get_context(start_method)
    # each worker leads its own process group, so that stopping it stops its children too
    ex = ProcessPoolExecutor(max_workers=min(nj, len(items)), mp_context=ctx, initializer=os.setpgrp)
    futures = [ex.submit(fn, x) for x in items]
    procs = _seen_workers(ex, [])
    ok = False
    bar = tqdm(total=len(items), desc=desc, unit=what, disable=desc is None)
    try:
        pending = set(futures)
        while pending:
            done, pending = wait(pending, return_when=FIRST_COMPLETED)
            procs = _seen_workers(ex, procs)
            bar.update(len(done))
            for f in done:
                e = f.exception()
                if isinstance(e, BrokenProcessPool):
                    for p in procs:
                        p.join(timeout=1)
                    codes = [p.exitcode for p in procs if p.exitcode not in (None, 0)]
                    # the pool terminates the survivors (SIGTERM): the cause is the other code
                    codes.sort(key=lambda c: c == -15)
                    how = describe_exit(codes[0]) if codes else "ended without an answer"
                    raise WorkerDied(f"a worker process died ({how}) with {len(pending) + len(done)} of "
                                     f"{len(items)} {what}s unfinished; the other workers were stopped") from None
                if e is not None:
                    raise e
        ok = True
        return [f.result() for f in futures]
    finally:
        bar.close()
        if not ok:
            for f in futures:
                f.cancel()
            _kill_workers(_seen_workers(ex, procs))
        # after a failure the workers are killed: do not wait on them (nor on a pool they broke)
        ex.shutdown(wait=ok, cancel_futures=True)


__all__ = ["WorkerDied", "run_parts"]
