"""How an output was made: every stage's entry point writes ``<out dir>/<tool>.record.json`` beside its
outputs (as ESPnet keeps the invoking command in each exp dir): the exact command line, working
directory, Python, the toolkit's git commit (and whether its tracked files were modified), time,
host, relevant environment variables, every parsed option with its default, and the resolved config
where the tool has one. ``python -m asr_gr.bin.rerun <record>`` runs the recorded command again.
"""

from __future__ import annotations

import datetime
import functools
import json
import os
import platform
import shlex
import socket
import subprocess
import sys
from pathlib import Path

from asr_gr.utils import atomic_write_text

SUFFIX = ".record.json"
# Environment variables that change what a stage computes or where it runs.
ENV_KEYS = ("PYTHONPATH", "OMP_NUM_THREADS", "MKL_NUM_THREADS", "CUDA_VISIBLE_DEVICES", "RANK", "WORLD_SIZE",
            "LOCAL_RANK", "LC_ALL", "SLURM_JOB_ID", "SLURM_ARRAY_TASK_ID")
TOOLKIT_ROOT = Path(__file__).resolve().parents[1]


@functools.lru_cache(maxsize=1)
def git_state(root=TOOLKIT_ROOT) -> dict:
    """{commit, dirty, modified (up to 20 tracked files that differ from the commit), root}; commit None
    when the toolkit is not a git checkout (e.g. installed from a wheel) or git is missing."""
    def git(*args):
        return subprocess.run(["git", "-C", str(root), *args], capture_output=True, text=True, timeout=30)

    try:
        head = git("rev-parse", "HEAD")
        if head.returncode != 0:
            return {"commit": None, "dirty": None, "root": str(root)}
        status = git("status", "--porcelain", "--untracked-files=no")
    except (OSError, subprocess.TimeoutExpired):
        return {"commit": None, "dirty": None, "root": str(root)}
    modified = [line[3:] for line in status.stdout.splitlines() if line.strip()]
    return {"commit": head.stdout.strip(), "dirty": bool(modified), "modified": modified[:20], "root": str(root)}


def _versions() -> dict:
    out = {"python": platform.python_version()}
    for name in ("torch", "torchaudio"):
        mod = sys.modules.get(name)
        if mod is not None:
            out[name] = getattr(mod, "__version__", "?")
    return out


def make_record(tool: str, argv=None, args=None, config: dict | None = None) -> dict:
    """The record of ``python -m <tool> <argv>`` (argv: the tool's arguments; None: sys.argv[1:])."""
    argv = [str(a) for a in (sys.argv[1:] if argv is None else argv)]
    cwd = os.getcwd()
    cmd = [sys.executable, "-m", tool, *argv]
    rec = {
        "tool": tool,
        "argv": argv,
        "command": f"cd {shlex.quote(cwd)} && {shlex.join(cmd)}",
        "cwd": cwd,
        "python": sys.executable,
        "git": git_state(),
        "time": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "host": socket.gethostname(),
        "versions": _versions(),
        "env": {k: os.environ[k] for k in ENV_KEYS if k in os.environ},
    }
    if args is not None:
        rec["args"] = dict(vars(args))
    if config is not None:
        rec["config"] = config
    return rec


def write_record(out_dir, tool: str, argv=None, args=None, config: dict | None = None) -> Path | None:
    """Write ``out_dir/<last part of tool>.record.json`` (atomically; only on rank 0 of a torchrun job).
    ``tool`` is the module run with ``python -m`` (``asr_gr.bin.train``); ``args`` the parsed options
    (argparse Namespace); ``config`` the resolved config."""
    if int(os.environ.get("RANK", "0")) != 0:
        return None
    path = Path(out_dir) / (tool.rsplit(".", 1)[-1] + SUFFIX)
    rec = make_record(tool, argv, args, config)
    atomic_write_text(path, json.dumps(rec, indent=1, default=str, ensure_ascii=False) + "\n")
    return path


def read_record(path) -> dict:
    from asr_gr.utils import DataError

    try:
        rec = json.loads(Path(path).read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise DataError(path, None, "record does not exist") from None
    except json.JSONDecodeError as e:
        raise DataError(path, e.lineno, f"not a record (invalid JSON: {e.msg})") from None
    missing = [k for k in ("tool", "argv", "cwd") if k not in rec]
    if missing:
        raise DataError(path, None, f"not a record: no '{missing[0]}'")
    return rec
