"""One writer per output dir: an advisory lock (``fcntl.flock``) on ``<dir>/.lock``.

The kernel drops an flock when its holder exits, however it ends (SIGKILL included), so a killed run
never leaves a stale lock: the file may stay behind, but nobody holds it. The file holds the holder's
pid, host and start time, so a second writer refuses with one line that names them.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import socket
import time
from pathlib import Path

from asr_gr.utils import LockedError

LOCK_NAME = ".lock"


@contextlib.contextmanager
def dir_lock(out_dir, what: str = "output dir"):
    """Hold ``out_dir``/.lock for the block (creating ``out_dir``); raise LockedError naming the
    holder (pid, host, start time) if another process holds it. The file is removed on release, and so
    is ``out_dir`` if this call created it and it is still empty."""
    d = Path(out_dir)
    created = not d.exists()
    d.mkdir(parents=True, exist_ok=True)
    path = d / LOCK_NAME
    while True:
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o666)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = _read(fd).strip() or "another process (it has not written its name yet)"
            os.close(fd)
            raise LockedError(f"{d}: {what} is in use by {holder}; wait for it to finish or stop it "
                              f"(lock file {path})") from None
        # The holder before us may have removed the file between our open() and flock(): then we
        # locked an orphan inode; open the path again.
        try:
            same = os.fstat(fd).st_ino == os.stat(path).st_ino
        except FileNotFoundError:
            same = False
        if same:
            break
        os.close(fd)
    try:
        os.ftruncate(fd, 0)
        os.write(fd, (f"pid {os.getpid()} on host {socket.gethostname()}, started "
                      f"{time.strftime('%Y-%m-%d %H:%M:%S %Z')}\n").encode())
        yield path
    finally:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(path)  # still holding the lock: nobody can have taken it in between
        os.close(fd)
        if created:  # a run that failed before writing anything leaves no stub dir behind
            with contextlib.suppress(OSError):
                d.rmdir()


def _read(fd: int) -> str:
    try:
        os.lseek(fd, 0, os.SEEK_SET)
        return os.read(fd, 4096).decode("utf-8", "replace")
    except OSError:
        return ""
