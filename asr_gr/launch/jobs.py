"""What both job backends share: Kaldi's ``JOB=1:N log command`` arguments, the command line a job
runs, and the error that names the failed jobs."""

from __future__ import annotations

import re
import shlex
import signal
from dataclasses import dataclass
from pathlib import Path

from asr_gr.utils import ConfigError

_RANGE = re.compile(r"^([A-Za-z_]\w*)=(\d+):(\d+)$")


def parse_job_range(word: str):
    """``JOB=1:4`` -> ('JOB', 1, 4); anything else -> None."""
    m = _RANGE.match(word)
    if not m:
        return None
    lo, hi = int(m.group(2)), int(m.group(3))
    if lo < 1 or hi < lo:
        raise ConfigError(f"job range '{word}': expected VAR=FIRST:LAST with 1 <= FIRST <= LAST")
    return m.group(1), lo, hi


def command_line(words: list[str]) -> str:
    """The shell command of a job, as Kaldi's run.pl builds it: words without blanks are kept as they
    are (so ``|``, ``>`` and ``&&`` stay shell operators), words with blanks are double-quoted (so
    ``"$(sed -n JOBp list)"`` still expands), or single-quoted when they contain a double quote. A
    command of one word is shell text as it is (``run.pl log 'a | b'``)."""
    if len(words) == 1:
        return words[0]

    def quote(w: str) -> str:
        if w and re.fullmatch(r"\S+", w):
            return w
        return shlex.quote(w) if '"' in w else f'"{w}"'
    return " ".join(quote(w) for w in words)


def last_error_line(log: Path) -> str:
    """The line of a job's log that says what went wrong: the last 'ERROR'/'Error'/'Traceback'-ending
    line, else its last non-comment line."""
    try:
        lines = [ln.rstrip() for ln in Path(log).read_text(encoding="utf-8", errors="replace").splitlines()]
    except OSError:
        return "(no log)"
    body = [ln for ln in lines if ln.strip() and not ln.startswith("#")]
    for ln in reversed(body):
        if ln.startswith("ERROR") or re.match(r"^\w*(Error|Exception)\b", ln):
            return ln
    return body[-1] if body else "(empty log)"


def describe_exit(code: int | None) -> str:
    if code is None:
        return "left the queue without an exit code: cancelled, out of time or its node failed"
    if code < 0 or code > 128:
        sig = -code if code < 0 else code - 128
        try:
            return f"killed by {signal.Signals(sig).name}"
        except ValueError:
            return f"exit code {code}"
    return f"exit code {code}"


class JobsFailed(RuntimeError):
    """Jobs of an array failed: ``failed`` is [(job id, log path, exit code)]; the message names each
    job, its log and the log's last error line, one line per job."""

    def __init__(self, failed: list[tuple[int, Path, int | None]], total: int, what: str = "", cancelled: bool = False):
        self.failed = failed
        self.total = total
        lines = [f"{len(failed)} of {total} jobs failed{(' (' + what + ')') if what else ''}"
                 + ("; the others were cancelled" if cancelled else "")]
        for j, log, code in failed:
            lines.append(f"job {j} ({describe_exit(code)}), log {log}: {last_error_line(log)}")
        super().__init__("\n".join(lines))

    def __reduce__(self):
        return (type(self), (self.failed, self.total))


@dataclass
class JobArray:
    """``words`` run once per job id in ``lo..hi``, ``var`` in the words and the log path replaced by
    the id (Kaldi's substitution: every occurrence of the text)."""

    var: str
    lo: int
    hi: int
    log: str
    words: list[str]

    @classmethod
    def from_args(cls, args: list[str]) -> "JobArray":
        """``[JOB=1:N] LOG COMMAND...`` (without a range: one job, id 1, no substitution)."""
        rng = parse_job_range(args[0]) if args else None
        rest = args[1:] if rng else args
        if len(rest) < 2:
            raise ConfigError("usage: [JOB=1:N] LOG_FILE COMMAND... (e.g. JOB=1:4 exp/log/decode.JOB.log "
                              "python -m asr_gr.bin.decode ... --part JOB)")
        var, lo, hi = rng or ("", 1, 1)
        if var and var not in rest[0]:
            raise ConfigError(f"the log file '{rest[0]}' does not contain {var}: the jobs would share one log")
        return cls(var, lo, hi, rest[0], list(rest[1:]))

    @property
    def ids(self) -> list[int]:
        return list(range(self.lo, self.hi + 1))

    def sub(self, text: str, j: int | str) -> str:
        return text.replace(self.var, str(j)) if self.var else text

    def command(self, j: int | str) -> str:
        return self.sub(command_line(self.words), j)

    def log_of(self, j: int) -> Path:
        return Path(self.sub(self.log, j))


class BackendFailed(RuntimeError):
    """A command run through a job backend (``--cmd``) failed; the message is the backend's report."""


def strip_option(argv: list[str], name: str) -> list[str]:
    """``argv`` without ``name VALUE`` / ``name=VALUE``."""
    out, skip = [], False
    for i, w in enumerate(argv):
        if skip:
            skip = False
        elif w == name:
            skip = True
        elif not w.startswith(name + "="):
            out.append(w)
    return out


def run_parts_through(cmd: str, nj: int, log_pattern, module: str, argv: list[str]) -> None:
    """Run ``python -m <module> <argv> --part JOB`` as jobs 1..``nj`` of the backend command ``cmd`` (a
    cmd.sh variable: ``utils/run.pl``, ``utils/slurm.pl --config conf/slurm.conf``), one log per job
    (``log_pattern`` contains JOB). SIGINT/SIGTERM are passed on to the backend, which stops its jobs.
    Raises :class:`BackendFailed` with the backend's report when a job fails."""
    import subprocess
    import sys

    from asr_gr.launch.local import Interrupted, interrupts_raise

    words = [*shlex.split(cmd), f"JOB=1:{nj}", str(log_pattern), sys.executable, "-m", module,
             *argv, "--part", "JOB"]
    p = subprocess.Popen(words, stderr=subprocess.PIPE, text=True)
    try:
        with interrupts_raise():
            _, err = p.communicate()
    except Interrupted as e:
        p.send_signal(e.signum)
        p.wait()
        raise
    if p.returncode != 0:
        lines = [ln for ln in err.splitlines() if ln.strip()]
        report = "\n".join(lines[-20:]) or f"{words[0]} exited with code {p.returncode}"
        raise BackendFailed(report[len("ERROR: "):] if report.startswith("ERROR: ") else report)
