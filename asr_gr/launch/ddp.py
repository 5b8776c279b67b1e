"""Several training processes (DDP) through torchrun: standalone on one machine, or under ``srun``
inside a Slurm allocation (one torchrun per node, c10d rendezvous on the allocation's first node)."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys

from asr_gr.utils import ConfigError


def first_node() -> str:
    """The address of the first node of the Slurm allocation: its ``NodeAddr`` (``scontrol show node``),
    which is how Slurm itself reaches it, falling back to its name (``scontrol show hostnames
    $SLURM_JOB_NODELIST``). The two differ where node names do not resolve (e.g. several slurmd
    emulating nodes on one host, as ``tools/slurm_local.sh --nodes N`` does)."""
    nodes = os.environ.get("SLURM_JOB_NODELIST", "")
    r = subprocess.run(["scontrol", "show", "hostnames", nodes], capture_output=True, text=True)
    hosts = r.stdout.split()
    if r.returncode != 0 or not hosts:
        raise ConfigError(f"cannot list the nodes of the Slurm allocation '{nodes}': {r.stderr.strip()}")
    r = subprocess.run(["scontrol", "show", "node", "-o", hosts[0]], capture_output=True, text=True)
    for field in r.stdout.split() if r.returncode == 0 else []:
        if field.startswith("NodeAddr=") and len(field) > len("NodeAddr="):
            return field[len("NodeAddr="):]
    return hosts[0]


def torchrun_command(module: str, args: list[str], nproc_per_node: int, num_nodes: int = 1,
                     port: int = 29500) -> list[str]:
    """The command that starts ``nproc_per_node`` x ``num_nodes`` processes of ``python -m module args``."""
    if nproc_per_node < 1 or num_nodes < 1:
        raise ConfigError(f"--nproc-per-node and --num-nodes must be >= 1, got {nproc_per_node} and {num_nodes}")
    run = [sys.executable, "-m", "torch.distributed.run", "--nnodes", str(num_nodes),
           "--nproc-per-node", str(nproc_per_node)]
    job = os.environ.get("SLURM_JOB_ID")
    if job and shutil.which("srun"):
        rdzv = ["--rdzv-backend", "c10d", "--rdzv-endpoint", f"{first_node()}:{port}", "--rdzv-id", job]
        return ["srun", f"--nodes={num_nodes}", f"--ntasks={num_nodes}", "--ntasks-per-node=1", "--kill-on-bad-exit=1",
                *run, *rdzv, "-m", module, *args]
    if num_nodes > 1:
        raise ConfigError("--num-nodes > 1 needs a Slurm allocation: run the stage through utils/slurm.pl "
                          "(--cmd-backend slurm)")
    return [*run, "--standalone", "-m", module, *args]
