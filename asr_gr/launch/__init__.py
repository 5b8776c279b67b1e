"""Job backends behind a recipe's ``cmd.sh``, with Kaldi's interface::

    ${decode_cmd} JOB=1:${nj} exp/x/log/decode.JOB.log python -m asr_gr.bin.decode ... --part JOB

- :mod:`asr_gr.launch.local` (``utils/run.pl``): the jobs as local processes, at most ``--max-jobs-run``
  at once, each in its own process group with its own log.
- :mod:`asr_gr.launch.slurm` (``utils/slurm.pl``): one ``sbatch --array`` whose tasks write their logs
  and exit codes; the driver polls ``squeue`` and cancels the array (``scancel``) on a failure or an
  interrupt.
- :mod:`asr_gr.launch.pool`: the same "first failure ends the run" rule for Python functions run in
  worker processes (the ``--nj`` of the Python tools, when they are called directly).

Both backends raise :class:`JobsFailed` naming the failed job ids, their logs and each one's last error line.
"""

from asr_gr.launch.jobs import JobArray, JobsFailed, parse_job_range

__all__ = ["JobArray", "JobsFailed", "parse_job_range"]
