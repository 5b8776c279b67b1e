"""Run a command as a job array, Kaldi's way (``utils/run.pl`` = ``--backend local``, ``utils/slurm.pl`` =
``--backend slurm``)::

    python -m asr_gr.bin.launch [--backend local|slurm] [OPTIONS] JOB=1:4 exp/log/decode.JOB.log \\
        python -m asr_gr.bin.decode ... --part JOB
    python -m asr_gr.bin.launch [OPTIONS] exp/log/train.log python -m asr_gr.bin.train ...   # one job

JOB (any name: ``N=1:4``) is replaced in the command and in the log path by each job's id. Each job's
stdout and stderr go to its log (a single local job's, without a JOB range, to the terminal as well). Words of the command with blanks are quoted; others pass to the shell
as they are (``|``, ``>`` work, as in Kaldi). The first failure ends the run: the other jobs are
terminated (local) or cancelled (``scancel``), and one line per failed job names its id, its log and
the log's last error line; exit status 1. SIGINT/SIGTERM stop every job too (exit 130/143).

Options (before the job range; ``--opt value`` or ``--opt=value``):
  --backend local|slurm   (default: local)
  --max-jobs-run N        jobs at once (local default: the number of cores; slurm: no limit)
  --echo true|false       local: a single job's output also to the terminal (default: true)
  --config FILE           slurm: conf/slurm.conf mapping the options below to sbatch flags
  --num-threads N  --mem 4G  --gpu N  --time 1:00:00  --num-nodes N   (slurm; the local backend ignores them)
  any other --key value   slurm: needs an 'option key=...' rule in the config
"""

from __future__ import annotations

import sys

from asr_gr.bin.common import main_guard
from asr_gr.launch.jobs import JobArray
from asr_gr.launch.local import Interrupted, run_local
from asr_gr.utils import ConfigError


def parse(argv: list[str]):
    opts: dict[str, str] = {}
    i = 0
    while i < len(argv) and argv[i].startswith("--"):
        if argv[i] in ("--help", "-h"):
            print(__doc__)
            sys.exit(0)
        key, eq, value = argv[i][2:].partition("=")
        if not eq:
            if i + 1 >= len(argv):
                raise ConfigError(f"{argv[i]} needs a value")
            value = argv[i + 1]
            i += 1
        opts[key.replace("-", "_")] = value
        i += 1
    return opts, JobArray.from_args(argv[i:])


@main_guard
def main(argv=None):
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or argv[0] in ("-h", "--help"):
        print(__doc__)
        sys.exit(0 if argv else 1)
    opts, array = parse(argv)
    backend = opts.pop("backend", "local")
    max_jobs = opts.pop("max_jobs_run", None)
    try:
        max_jobs = int(max_jobs) if max_jobs is not None else None
    except ValueError:
        raise ConfigError(f"--max-jobs-run: expected a number, got '{max_jobs}'") from None
    config = opts.pop("config", None)
    echo = opts.pop("echo", "true")
    if echo not in ("true", "false"):
        raise ConfigError(f"--echo: expected true or false, got '{echo}'")
    try:
        if backend == "local":
            run_local(array, max_jobs_run=max_jobs, echo=not array.var and echo == "true")
        elif backend == "slurm":
            from asr_gr.launch.slurm import SlurmConfig, run_slurm

            run_slurm(array, SlurmConfig.from_file(config), opts, max_jobs_run=max_jobs)
        else:
            raise ConfigError(f"--backend: expected local or slurm, got '{backend}'")
    except Interrupted as e:
        print(f"ERROR: {e}; the jobs were stopped", file=sys.stderr)
        sys.exit(128 + e.signum)


if __name__ == "__main__":
    main()
