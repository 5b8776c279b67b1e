"""Start a module as several DDP processes: ``torchrun`` on this machine, or, inside a Slurm job
(``utils/slurm.pl``), ``srun`` with one torchrun per node and a c10d rendezvous on the first node.

    python -m asr_gr.bin.torchrun --nproc-per-node 2 [--num-nodes 2] [--port 29500] -- \\
        asr_gr.bin.train --exp-dir exp/x ... --ngpu 1
"""

from __future__ import annotations

import argparse
import os
import sys

from asr_gr.bin.common import main_guard
from asr_gr.launch.ddp import torchrun_command


@main_guard
def main(argv=None):
    argv = list(sys.argv[1:] if argv is None else argv)
    if "--" not in argv:
        argv = argv + ["--"] if any(a in ("-h", "--help") for a in argv) else argv
    head, rest = (argv[:argv.index("--")], argv[argv.index("--") + 1:]) if "--" in argv else (argv, [])
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--nproc-per-node", type=int, default=1)
    ap.add_argument("--num-nodes", type=int, default=1)
    ap.add_argument("--port", type=int, default=29500, help="rendezvous port on the first node")
    args = ap.parse_args(head)
    if not rest:
        ap.error("give the module and its arguments after --")
    cmd = torchrun_command(rest[0], rest[1:], args.nproc_per_node, args.num_nodes, args.port)
    print(" ".join(cmd), file=sys.stderr, flush=True)
    os.execvp(cmd[0], cmd)


if __name__ == "__main__":
    main()
