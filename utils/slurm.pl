#!/usr/bin/env bash
# Kaldi's slurm.pl interface, in Python (asr_gr.launch.slurm): run a command as a Slurm job array.
#   utils/slurm.pl [--config conf/slurm.conf] [--num-threads N] [--mem 4G] [--gpu N] [--time T] \
#     [--max-jobs-run N] JOB=1:N LOG.JOB.log COMMAND...
# One sbatch --array; the first failure (or Ctrl-C) cancels the array and names the failed jobs and logs.
py=$(dirname "$(readlink -f "$0")")/../tools/venv/bin/python  # the toolkit's environment, else PATH's
[ -x "${py}" ] || py=python3
exec "${py}" -m asr_gr.bin.launch --backend slurm "$@"
