#!/usr/bin/env bash
# Sourced at the top of a driver script (asr.sh) with the script's arguments:
#   . utils/supervise.sh "$@"
# Runs the script again as a child in a process group of its own and passes SIGTERM, SIGINT and SIGHUP
# on to that whole group, so that stopping the driver (kill <pid>, Ctrl-C) also stops the python tools
# and job launchers it started (utils/run.pl and utils/slurm.pl stop or scancel their jobs). Bash on its
# own runs a trap only after the foreground command has finished, so a killed driver would leave its
# current stage running. Exits with the child's status (128 + the signal's number when it was stopped).
if [ -z "${_ASR_GR_SUPERVISOR:-}" ]; then
  export _ASR_GR_SUPERVISOR=$$
  set -m                       # job control: the background child leads a process group of its own
  "${BASH}" "$0" "$@" &
  _child=$!
  set +m
  _pass() { kill -s "$1" -- "-${_child}" 2>/dev/null || true; }
  trap '_pass TERM' TERM
  trap '_pass INT' INT
  trap '_pass HUP' HUP
  while :; do
    _rc=0; wait "${_child}" || _rc=$?
    kill -0 "${_child}" 2>/dev/null || break   # still running: wait returned for a signal; wait again
  done
  exit "${_rc}"
fi
