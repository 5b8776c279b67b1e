"""The Slurm backend (``utils/slurm.pl``): a job array as one ``sbatch --array=LO-HI%MAX``.

Each task runs a wrapper script (written to ``<log dir>/q/``) that substitutes its task id for JOB in
the command and the log path, frames its log as Kaldi does and, at the end, writes its exit code to
``q/done.<array id>.<task id>`` (``sacct`` needs slurmdbd, which a small cluster often lacks). The
driver polls those files and ``squeue`` every ``poll_s`` seconds (``sbatch --wait`` polls coarsely:
2 s, 10 s, 42 s); a task that left the queue without an exit code (cancelled, time limit, node
failure) counts as failed. The first failure, SIGINT or SIGTERM cancels the array (``scancel``).

Generic options map to sbatch flags through a config file in ESPnet's ``conf/slurm.conf`` format::

    command sbatch --export=ALL       # the submit command and its fixed flags
    option mem=* --mem $0             # --mem 4G -> --mem 4G ($0: the value)
    option mem=0                      # --mem 0 -> no flag
    option num_threads=* --cpus-per-task $0
    option gpu=* --gres=gpu:$0
    option gpu=0
    default gpu=0                     # used when the option is not given
"""

from __future__ import annotations

import os
import re
import shlex
import shutil
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path

from asr_gr.launch.jobs import JobArray, JobsFailed, command_line
from asr_gr.launch.local import interrupts_raise
from asr_gr.utils import ConfigError, DataError, text_lines

DEFAULT_CONF = """\
command sbatch --export=ALL
option name=* --job-name $0
option time=* --time $0
option mem=* --mem $0
option mem=0
option num_threads=* --cpus-per-task $0
option num_threads=1 --cpus-per-task 1
option num_nodes=* --nodes $0
option gpu=* --gres=gpu:$0
option gpu=0
default gpu=0
"""

LOST_GRACE_S = 5.0  # a task out of squeue may need a moment before its exit-code file is visible


@dataclass
class SlurmConfig:
    command: list[str] = field(default_factory=lambda: ["sbatch"])
    exact: dict = field(default_factory=dict)     # (key, value) -> flags
    wildcard: dict = field(default_factory=dict)  # key -> flags with $0
    defaults: dict = field(default_factory=dict)  # key -> value

    @classmethod
    def parse(cls, text: str, source: str = "slurm.conf") -> "SlurmConfig":
        conf = cls()
        for lineno, line in enumerate(text.splitlines(), 1):
            line = line.split("#", 1)[0].strip()
            if not line:
                continue
            head, _, rest = line.partition(" ")
            rest = rest.strip()
            if head == "command":
                conf.command = shlex.split(rest)
                if not conf.command:
                    raise DataError(source, lineno, "'command' needs the submit command (e.g. sbatch)")
                continue
            m = re.fullmatch(r"(\w+)=(\S*)(?:\s+(.*))?", rest)
            if head not in ("option", "default") or not m:
                raise DataError(source, lineno, f"expected 'command ...', 'option KEY=VALUE|* [flags]' or "
                                                f"'default KEY=VALUE', got '{line}'")
            key, value, flags = m.group(1), m.group(2), shlex.split(m.group(3) or "")
            if head == "default":
                conf.defaults[key] = value
            elif value == "*":
                conf.wildcard[key] = flags
            else:
                conf.exact[(key, value)] = flags
        return conf

    @classmethod
    def from_file(cls, path) -> "SlurmConfig":
        if path is None:
            return cls.parse(DEFAULT_CONF, "built-in slurm.conf")
        p = Path(path)
        if not p.is_file():
            raise DataError(p, None, "the Slurm config file does not exist")
        return cls.parse("\n".join(line for _, line in text_lines(p)), str(p))

    def flags(self, options: dict) -> list[str]:
        """sbatch flags for generic ``options`` (num_threads, mem, gpu, time, ...) and the defaults."""
        values = {**self.defaults, **{k: str(v) for k, v in options.items() if v is not None}}
        out = list(self.command[1:])
        for key, value in values.items():
            if (key, value) in self.exact:
                out += self.exact[(key, value)]
            elif key in self.wildcard:
                out += [f.replace("$0", value) for f in self.wildcard[key]]
            else:
                raise ConfigError(f"--{key.replace('_', '-')} {value}: the Slurm config has no 'option {key}=...' "
                                  "rule for it")
        return out


def _tool(name: str) -> str:
    path = shutil.which(name)
    if path is None:
        raise ConfigError(f"the Slurm backend needs '{name}' on PATH (is this a Slurm submit host?)")
    return path


WRAPPER = """\
#!/usr/bin/env bash
# A task of a job array submitted by asr_gr.launch.slurm; JOB is replaced by the task id.
cd {cwd}
task=${{SLURM_ARRAY_TASK_ID:-{lo}}}
var={var}
cmd={cmd}
log={log}
if [ -n "$var" ]; then cmd=${{cmd//$var/$task}}; log=${{log//$var/$task}}; fi
mkdir -p "$(dirname "$log")"
{{ echo "# $cmd"; echo "# Started at $(date) on $(hostname) (slurm job ${{SLURM_ARRAY_JOB_ID:-$SLURM_JOB_ID}}_$task)"; echo "#"; }} > "$log"
t0=$(date +%s)
bash -c "$cmd" >> "$log" 2>&1
rc=$?
t=$(( $(date +%s) - t0 ))
echo "# Accounting: time=$t threads=${{SLURM_CPUS_PER_TASK:-1}}" >> "$log"
echo "# Ended (code $rc) at $(date), elapsed time $t seconds" >> "$log"
done_file={qdir}/done.${{SLURM_ARRAY_JOB_ID:-$SLURM_JOB_ID}}.$task
echo $rc > "$done_file.tmp" && mv "$done_file.tmp" "$done_file"
exit $rc
"""


def _queued_tasks(job_id: str, squeue: str) -> set[int] | None:
    """Task ids of the array still in the queue (pending or running); None if squeue failed."""
    r = subprocess.run([squeue, "-h", "-r", "-j", job_id, "-o", "%i"], capture_output=True, text=True)
    if r.returncode != 0:
        if "Invalid job id" in r.stderr:  # the array left the controller's memory: nothing queued
            return set()
        return None
    out = set()
    for line in r.stdout.split():
        _, _, task = line.partition("_")
        if task.isdigit():
            out.add(int(task))
        elif task.startswith("["):  # a pending range not yet expanded: 1-4%2, 3,5
            for part in task.strip("[]").split("%")[0].split(","):
                a, _, b = part.partition("-")
                out.update(range(int(a), int(b or a) + 1))
    return out


def submit(array: JobArray, conf: SlurmConfig, options: dict, max_jobs_run: int | None = None) -> tuple[str, Path]:
    """Write the wrapper and submit the array; returns (array job id, q dir)."""
    first_log = array.log_of(array.lo)
    qdir = first_log.parent.resolve() / "q"
    qdir.mkdir(parents=True, exist_ok=True)
    base = Path(array.log).name.replace(array.var, "") if array.var else Path(array.log).name
    name = re.sub(r"\.+", ".", re.sub(r"\.log$", "", re.sub(r"[^\w.-]", "_", base))).strip("._") or "job"
    script = qdir / f"{name}.sh"
    log_abs = str(Path(array.log) if Path(array.log).is_absolute() else Path.cwd() / array.log)
    script.write_text(WRAPPER.format(cwd=shlex.quote(os.getcwd()), lo=array.lo, var=shlex.quote(array.var),
                                     cmd=shlex.quote(command_line(array.words)), log=shlex.quote(log_abs),
                                     qdir=shlex.quote(str(qdir))), encoding="utf-8")
    script.chmod(0o755)
    sbatch = _tool(conf.command[0])
    flags = conf.flags({"name": name, **options})
    throttle = f"%{max_jobs_run}" if max_jobs_run else ""
    cmd = [sbatch, "--parsable", f"--array={array.lo}-{array.hi}{throttle}",
           f"--output={qdir}/{name}.%a.out", *flags, str(script)]
    r = subprocess.run(cmd, capture_output=True, text=True)
    if r.returncode != 0:
        msg = (r.stderr.strip() or r.stdout.strip()).splitlines()
        raise ConfigError(f"sbatch refused the jobs ({' '.join(shlex.quote(c) for c in cmd)}): "
                          f"{msg[-1] if msg else 'exit code ' + str(r.returncode)}")
    job_id = r.stdout.strip().split(";")[0]
    if not job_id.isdigit():
        raise ConfigError(f"sbatch printed '{r.stdout.strip()}', not a job id")
    return job_id, qdir


def run_slurm(array: JobArray, conf: SlurmConfig, options: dict | None = None, max_jobs_run: int | None = None,
              poll_s: float = 0.5) -> str:
    """Submit ``array`` and wait for it; raise :class:`JobsFailed` (after ``scancel``) when a task fails,
    :class:`Interrupted` (after ``scancel``) on SIGINT/SIGTERM. Returns the array job id."""
    squeue, scancel = _tool("squeue"), _tool("scancel")
    finished: dict[int, int | None] = {}
    lost_since: dict[int, float] = {}
    job_id = None
    ids = array.ids
    with interrupts_raise() as guard:
        try:
            with guard.deferred():  # a signal during sbatch waits for its job id, so that the job is cancelled
                job_id, qdir = submit(array, conf, options or {}, max_jobs_run)
            while True:
                for j in ids:
                    if j not in finished:
                        f = qdir / f"done.{job_id}.{j}"
                        if f.exists():
                            text = f.read_text().strip()
                            finished[j] = int(text) if text.lstrip("-").isdigit() else 1
                failed = [(j, array.log_of(j), c) for j, c in sorted(finished.items()) if c != 0]  # noqa: E501
                if len(finished) < len(ids) and not failed:
                    queued = _queued_tasks(job_id, squeue)
                    now = time.monotonic()
                    if queued is not None:
                        for j in ids:
                            if j in finished or j in queued:
                                lost_since.pop(j, None)
                            elif now - lost_since.setdefault(j, now) > LOST_GRACE_S:
                                finished[j] = None  # left the queue without an exit code
                                failed.append((j, array.log_of(j), None))
                if failed:
                    raise JobsFailed(failed, len(ids), f"slurm job {job_id}",
                                     cancelled=len(finished) < len(ids))
                if len(finished) == len(ids):
                    return job_id
                time.sleep(poll_s)
        finally:
            if job_id is not None and len(finished) < len(ids):
                subprocess.run([scancel, job_id], capture_output=True)
