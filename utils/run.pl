#!/usr/bin/env bash
# Kaldi's run.pl interface, in Python (asr_gr.launch.local): run a command as N local jobs, one log each.
#   utils/run.pl [--max-jobs-run N] JOB=1:N LOG.JOB.log COMMAND...   (JOB replaced by 1..N)
# The first failure stops the other jobs and names each failed job's id and log.
py=$(dirname "$(readlink -f "$0")")/../tools/venv/bin/python  # the toolkit's environment, else PATH's
[ -x "${py}" ] || py=python3
exec "${py}" -m asr_gr.bin.launch --backend local "$@"
