"""Small helpers shared by every layer: atomic file writes and errors that name their source."""

from __future__ import annotations

import contextlib
import logging
import os
import sys
import tempfile
from pathlib import Path


_UMASK = os.umask(0)
os.umask(_UMASK)


class DataError(ValueError):
    """A problem with an input file: the message names file, line and reason."""

    def __init__(self, path, line: int | None, reason: str):
        self.path = str(path)
        self.line = line
        self.reason = reason
        where = f"{path}:{line}" if line is not None else f"{path}"
        super().__init__(f"{where}: {reason}")

    def __reduce__(self):  # survives the trip between processes (a pool or a job backend's worker)
        return (type(self), (self.path, self.line, self.reason))


class ConfigError(ValueError):
    """A problem with a configuration value: the message names the key and reason."""


class LockedError(RuntimeError):
    """Another process is writing the same output dir (see asr_gr.lock); the message names it."""


class TrainingError(RuntimeError):
    """Training cannot go on (e.g. too many non-finite steps); the message says why."""


def text_lines(path):
    """Yield ``(line number, line)`` for the non-blank lines of a UTF-8 text file (CR/LF endings
    stripped); bytes that are not UTF-8 raise DataError naming the line."""
    data = Path(path).read_bytes()
    if data.startswith(b"\xef\xbb\xbf"):
        raise DataError(path, 1, "starts with a UTF-8 byte-order mark (BOM, bytes EF BB BF); save the file "
                        "without it")
    for lineno, raw in enumerate(data.split(b"\n"), 1):
        try:
            line = raw.decode("utf-8").rstrip("\r")
        except UnicodeDecodeError as e:
            raise DataError(path, lineno, f"not valid UTF-8 (byte {e.start})") from None
        if line.strip():
            yield lineno, line


@contextlib.contextmanager
def atomic_path(path, suffix: str | None = None):
    """Yield a temporary path beside ``path``; rename it onto ``path`` only if the block succeeds.

    A killed or failing writer leaves the old file (or no file) in place, never a half-written one.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=suffix or ".tmp", dir=path.parent)
    os.close(fd)
    os.chmod(tmp, 0o666 & ~_UMASK)  # mkstemp makes 0600; give the file the mode open() would
    try:
        yield Path(tmp)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise


def atomic_write_text(path, text: str) -> None:
    with atomic_path(path) as tmp:
        tmp.write_text(text, encoding="utf-8")


def setup_logging(log_file=None, level=logging.INFO) -> logging.Logger:
    """Log to stderr and, when given, to ``log_file`` (appending, so reruns keep history)."""
    root = logging.getLogger()
    root.setLevel(level)
    for h in list(root.handlers):
        root.removeHandler(h)
    fmt = logging.Formatter("%(asctime)s (%(module)s:%(lineno)d) %(levelname)s: %(message)s")
    sh = logging.StreamHandler(sys.stderr)
    sh.setFormatter(fmt)
    root.addHandler(sh)
    if log_file is not None:
        Path(log_file).parent.mkdir(parents=True, exist_ok=True)
        fh = logging.FileHandler(log_file, encoding="utf-8")
        fh.setFormatter(fmt)
        root.addHandler(fh)
    return root


def die(msg: str, code: int = 1):
    """Print one clear line and exit: used by bin/ entry points for user-facing errors."""
    print(f"ERROR: {msg}", file=sys.stderr)
    sys.exit(code)
