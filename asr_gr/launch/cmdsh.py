"""Commands as jobs of a recipe's ``cmd.sh`` backend, one job each, side by side: how the ablation grid
runs its systems on a cluster (``asr_gr.bin.grid --backend slurm``, or the recipe's ``--cmd-backend
slurm``).

:func:`cmd_sh_commands` reads ``train_cmd``, ``decode_cmd`` and ``cuda_cmd`` as the recipe's ``cmd.sh``
sets them for a backend, by sourcing it in bash with ``cmd_backend`` set (as asr.sh does), so that the
user's edits of cmd.sh and of conf/slurm.conf apply. :class:`BackendJobs` runs a command as one job of
such a backend command, Kaldi's way (``utils/slurm.pl --config conf/slurm.conf --num-threads 2 LOG
COMMAND``): each through a launcher process of its own, which submits the job, waits for it, and
cancels it (``scancel``) when it gets SIGTERM. The job frames its log (``# Started at ... (slurm job
N_1)``, ``# Accounting: time=T threads=C``, ``# Ended (code N)``): the frame gives the job's own exit
code and run time (without the time it waited in the queue).
"""

from __future__ import annotations

import contextlib
import re
import shlex
import signal
import subprocess
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from asr_gr.launch.jobs import describe_exit, last_error_line
from asr_gr.launch.local import kill_groups
from asr_gr.utils import ConfigError

COMMANDS = ("train_cmd", "decode_cmd", "cuda_cmd")
STOP_GRACE_S = 30.0  # for the launchers to cancel their jobs after SIGTERM (scancel: a controller round trip)

_READ = 'cmd_backend=$1; . ./cmd.sh || exit 1; printf "%s\\0" "${train_cmd-}" "${decode_cmd-}" "${cuda_cmd-}"'


def cmd_sh_commands(backend: str, recipe_dir=".") -> dict[str, str]:
    """``{train_cmd, decode_cmd, cuda_cmd}`` as ``<recipe_dir>/cmd.sh`` sets them for ``cmd_backend=backend``."""
    cmd_sh = Path(recipe_dir) / "cmd.sh"
    if not cmd_sh.is_file():
        raise ConfigError(f"{cmd_sh}: not found: the '{backend}' backend runs each job through the commands "
                          "the recipe's cmd.sh sets (train_cmd, cuda_cmd); run from the recipe's directory")
    r = subprocess.run(["bash", "-c", _READ, "cmd.sh", backend], cwd=recipe_dir, capture_output=True, text=True)
    if r.returncode != 0:
        lines = [ln for ln in r.stderr.splitlines() if ln.strip()]
        raise ConfigError(f"{cmd_sh} (cmd_backend={backend}): "
                          + (lines[-1] if lines else f"sourcing it failed with exit code {r.returncode}"))
    commands = dict(zip(COMMANDS, r.stdout.split("\0")))
    for name in COMMANDS:
        if not commands.get(name, "").strip():
            raise ConfigError(f"{cmd_sh} sets no {name} for cmd_backend={backend}")
    return commands


@dataclass
class Frame:
    """What a job's log frame says: exit code, run time (s), Slurm job id; None where it is silent."""

    code: int | None = None
    seconds: float | None = None
    job: str | None = None


def read_frame(log: Path) -> Frame:
    f = Frame()
    try:
        lines = Path(log).read_text(encoding="utf-8", errors="replace").splitlines()
    except OSError:
        return f
    for ln in lines:
        if not ln.startswith("# "):
            continue
        if m := re.match(r"# Started at .*\(slurm job (\S+)\)$", ln):
            f.job = m.group(1)
        elif m := re.match(r"# Accounting: time=(\d+)", ln):
            f.seconds = float(m.group(1))
        elif m := re.match(r"# Ended \(code (-?\d+)\)", ln):
            f.code = int(m.group(1))
    return f


class BackendJobs:
    """Commands run as one job each of the backend command ``command`` (a cmd.sh variable) with generic
    ``options`` (``--num-threads 2 --gpu 1``) that ask for ``cores`` cores; each command is handed over
    as one word of shell text (exactly its words), its output goes to its log."""

    def __init__(self, command: str, options: list[str], cores: int):
        self.words = [*shlex.split(command), *options]
        self.cores = cores
        self._messages: dict[subprocess.Popen, object] = {}

    def argv(self, log: Path, cmd: list[str]) -> list[str]:
        return [*self.words, str(log), shlex.join(cmd)]

    def start(self, log: Path, cmd: list[str]) -> subprocess.Popen:
        """Start the launcher of one job (in a session of its own); its own messages (a refusal by sbatch,
        its report of a failure) are kept for :meth:`result`."""
        log.parent.mkdir(parents=True, exist_ok=True)
        log.unlink(missing_ok=True)  # a frame from an earlier run must not speak for this one
        messages = tempfile.TemporaryFile("w+", encoding="utf-8")
        p = subprocess.Popen(self.argv(log, cmd), stdin=subprocess.DEVNULL, stdout=messages,
                             stderr=subprocess.STDOUT, start_new_session=True)
        self._messages[p] = messages
        return p

    def result(self, p: subprocess.Popen, log: Path) -> tuple[Frame, str | None]:
        """The finished job's frame and, if it failed, what went wrong: its exit code (or that it was
        stopped: cancelled, out of time), log and the log's last error line; for a job that never ran
        (refused by sbatch, cancelled while pending) the launcher's report."""
        fh = self._messages.pop(p)
        fh.seek(0)
        report = fh.read()
        fh.close()
        frame = read_frame(log)
        if p.returncode == 0:
            return frame, None
        job = f"slurm job {frame.job}, " if frame.job else ""
        if frame.code not in (None, 0):
            return frame, f"{job}exit code {frame.code}, log {log}: {last_error_line(log)}"
        if frame.job and frame.code is None:  # started, never ended
            return frame, f"{job}{describe_exit(None)}, log {log}: {last_error_line(log)}"
        lines = [ln[len("ERROR: "):] if ln.startswith("ERROR: ") else ln for ln in report.splitlines() if ln.strip()]
        why = "; ".join(lines[-3:]) or f"{self.words[0]} exited with code {p.returncode}"
        return frame, why + (f", log {log}" if log.exists() else "")

    def stop(self, procs: list[subprocess.Popen], grace_s: float = STOP_GRACE_S) -> None:
        """SIGTERM to each launcher still running (it cancels its job and exits), a wait of up to
        ``grace_s``, then what is left goes as :func:`asr_gr.launch.local.kill_groups` stops it. The
        signal goes to the launcher alone, not to its process group: a submission under way (sbatch)
        completes, so that its job is known and cancelled."""
        alive = [p for p in procs if p.poll() is None]
        for p in alive:
            with contextlib.suppress(ProcessLookupError):
                p.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + grace_s
        for p in alive:
            with contextlib.suppress(subprocess.TimeoutExpired):
                p.wait(timeout=max(0.0, deadline - time.monotonic()))
        kill_groups(procs)
        for p in procs:
            if p in self._messages:
                self._messages.pop(p).close()
