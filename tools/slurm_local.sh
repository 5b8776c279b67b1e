#!/usr/bin/env bash
# A single-node Slurm cluster on this machine, for the tests of the Slurm job backend (and for trying
# utils/slurm.pl on a workstation).
#
#   tools/slurm_local.sh start DIR   # installs Slurm if missing (root + apt-get), starts slurmctld and
#                                    # slurmd with DIR/slurm.conf; prints "export SLURM_CONF=DIR/slurm.conf"
#   tools/slurm_local.sh stop DIR    # stops the daemons started with DIR
#
# Exit status 2 (and the reason on stderr) where Slurm cannot be installed or started: not root, no
# apt-get. Debian packages: slurmctld slurmd slurm-client (--no-install-recommends, about 13 MB).
# The config needs no cgroups (proctrack/linuxproc, task/none) and no munge daemon (auth/none,
# cred/none: Slurm 22.05, Debian 12; later Slurm releases dropped them). The node is this host
# (hostname -s, address 127.0.0.1) with its cores and memory; ports are picked free, so two clusters
# (two test runs) can live side by side.
set -euo pipefail

cmd=${1:-}; dir=${2:-}
[ -n "${cmd}" ] && [ -n "${dir}" ] || { echo "usage: $0 start|stop DIR" >&2; exit 1; }

skip() { echo "slurm_local.sh: $*" >&2; exit 2; }

if [ "${cmd}" = stop ]; then
  for d in slurmd slurmctld; do
    if [ -f "${dir}/${d}.pid" ]; then
      pid=$(cat "${dir}/${d}.pid")
      kill "${pid}" 2>/dev/null || true
      for _ in $(seq 50); do kill -0 "${pid}" 2>/dev/null || break; sleep 0.1; done
      kill -9 "${pid}" 2>/dev/null || true
      rm -f "${dir}/${d}.pid"
    fi
  done
  exit 0
fi
[ "${cmd}" = start ] || { echo "usage: $0 start|stop DIR" >&2; exit 1; }

if ! command -v slurmctld >/dev/null || ! command -v slurmd >/dev/null || ! command -v sbatch >/dev/null; then
  [ "$(id -u)" = 0 ] || skip "Slurm is not installed and installing it needs root"
  command -v apt-get >/dev/null || skip "Slurm is not installed and there is no apt-get to install it"
  export DEBIAN_FRONTEND=noninteractive
  { apt-get update -qq && apt-get install -y -qq --no-install-recommends slurmctld slurmd slurm-client; } \
    > "${TMPDIR:-/tmp}/slurm_local_apt.log" 2>&1 \
    || skip "apt-get could not install slurmctld slurmd slurm-client (see ${TMPDIR:-/tmp}/slurm_local_apt.log)"
fi
[ "$(id -u)" = 0 ] || skip "starting slurmd needs root"

mkdir -p "${dir}/state" "${dir}/spool"
dir=$(cd "${dir}" && pwd)
host=$(hostname -s)
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }
ctld_port=$(free_port); d_port=$(free_port)
while [ "${d_port}" = "${ctld_port}" ]; do d_port=$(free_port); done
mem_mb=$(awk '/MemTotal/ {print int($2 / 1024 * 0.9)}' /proc/meminfo)
cat > "${dir}/slurm.conf" <<EOF
ClusterName=asrgr$$
SlurmctldHost=${host}(127.0.0.1)
SlurmctldPort=${ctld_port}
SlurmdPort=${d_port}
SlurmUser=root
SlurmdUser=root
AuthType=auth/none
CredType=cred/none
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
MpiDefault=none
SelectType=select/cons_tres
SelectTypeParameters=CR_Core
SchedulerType=sched/backfill
SchedulerParameters=batch_sched_delay=0
EnforcePartLimits=ALL
ReturnToService=2
StateSaveLocation=${dir}/state
SlurmdSpoolDir=${dir}/spool
SlurmctldPidFile=${dir}/slurmctld.pid
SlurmdPidFile=${dir}/slurmd.pid
SlurmctldLogFile=${dir}/slurmctld.log
SlurmdLogFile=${dir}/slurmd.log
NodeName=${host} NodeAddr=127.0.0.1 CPUs=$(nproc) RealMemory=${mem_mb} State=UNKNOWN
PartitionName=local Nodes=${host} Default=YES MaxTime=INFINITE State=UP
EOF
export SLURM_CONF=${dir}/slurm.conf
slurmctld -f "${SLURM_CONF}" || skip "slurmctld did not start (see ${dir}/slurmctld.log)"
slurmd -f "${SLURM_CONF}" || { "$0" stop "${dir}"; skip "slurmd did not start (see ${dir}/slurmd.log)"; }
for _ in $(seq 300); do
  state=$(sinfo -h -o %T 2>/dev/null | head -1 || true)
  [ "${state}" = idle ] && { echo "export SLURM_CONF=${SLURM_CONF}"; exit 0; }
  sleep 0.1
done
"$0" stop "${dir}"
skip "the node did not become idle within 30 s (state '${state:-}'; see ${dir}/slurmctld.log, ${dir}/slurmd.log)"
