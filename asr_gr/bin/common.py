"""What every entry point shares: user-facing errors become one line and a non-zero exit."""

from __future__ import annotations

import functools
import sys

from asr_gr.launch.jobs import BackendFailed, JobsFailed
from asr_gr.launch.local import Interrupted
from asr_gr.launch.pool import WorkerDied
from asr_gr.utils import ConfigError, DataError, LockedError, TrainingError


def main_guard(fn):
    """Run ``fn``; a DataError/ConfigError/TrainingError/LockedError (or failed jobs, a dead worker) prints
    ``ERROR: <file:line: reason>`` and exits 1.
    So does an error of the file system (a directory that cannot be written, a full disk, a path that
    is a file): ``ERROR: <path>: <reason>``; outputs are written atomically, so nothing is half-done."""

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        try:
            return fn(*args, **kwargs)
        except (DataError, ConfigError, TrainingError, LockedError, JobsFailed, WorkerDied, BackendFailed) as e:
            print(f"ERROR: {e}", file=sys.stderr)
            sys.exit(1)
        except Interrupted as e:  # SIGINT/SIGTERM while jobs ran: they were stopped
            print(f"ERROR: {e}; its jobs were stopped", file=sys.stderr)
            sys.exit(128 + e.signum)
        except OSError as e:
            reason = e.strerror or str(e)
            print(f"ERROR: {e.filename}: {reason}" if e.filename else f"ERROR: {reason}", file=sys.stderr)
            sys.exit(1)

    return wrapper
