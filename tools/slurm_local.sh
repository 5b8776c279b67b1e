#!/usr/bin/env bash
# A local Slurm cluster on this machine (one node, or N emulated ones), for the tests of the Slurm job
# backend (and for trying utils/slurm.pl on a workstation).
#
#   tools/slurm_local.sh start DIR [--nodes N]  # installs Slurm if missing (root + apt-get), starts
#                                    # slurmctld and slurmd with DIR/slurm.conf; prints
#                                    # "export SLURM_CONF=DIR/slurm.conf"
#   tools/slurm_local.sh stop DIR    # stops the daemons started with DIR
#
# Exit status 2 (and the reason on stderr) where Slurm cannot be installed or started: not root, no
# apt-get. Debian packages: slurmctld slurmd slurm-client (--no-install-recommends, about 13 MB).
# The config needs no cgroups (proctrack/linuxproc, task/none) and no munge daemon (auth/none,
# cred/none: Slurm 22.05, Debian 12; later Slurm releases dropped them). The node is this host
# (hostname -s, address 127.0.0.1) with its cores and memory; ports are picked free, so two clusters
# (two test runs) can live side by side. --nodes N (N > 1) emulates N nodes on this host, one slurmd
# each (slurmd -N NAME, Slurm's multiple-slurmd mode, which Debian's build has): nodes <host>-1 ..
# <host>-N, each with all of this host's cores, its own port, spool dir, pid and log file. Their names
# do not resolve; jobs reach a node by its NodeAddr (127.0.0.1), as asr_gr.launch.ddp does.
set -euo pipefail

cmd=${1:-}; dir=${2:-}
[ -n "${cmd}" ] && [ -n "${dir}" ] || { echo "usage: $0 start|stop DIR [--nodes N]" >&2; exit 1; }
nodes=1
if [ "${3:-}" = --nodes ]; then nodes=${4:-}; fi
[[ "${nodes}" =~ ^[1-9][0-9]*$ ]] || { echo "slurm_local.sh: --nodes needs a positive number, got '${nodes}'" >&2; exit 1; }

skip() { echo "slurm_local.sh: $*" >&2; exit 2; }

if [ "${cmd}" = stop ]; then
  # first cancel this cluster's jobs and wait (10 s at most) until they have left: their processes run
  # under slurmstepd, which outlives the daemons (a test that failed would leave its jobs running)
  if [ -f "${dir}/slurmctld.pid" ] && command -v scancel >/dev/null; then
    SLURM_CONF="${dir}/slurm.conf" scancel --user="$(id -un)" 2>/dev/null || true
    for _ in $(seq 100); do
      [ -z "$(SLURM_CONF="${dir}/slurm.conf" squeue -h -o %i 2>/dev/null)" ] && break
      sleep 0.1
    done
  fi
  for f in "${dir}"/slurmd*.pid "${dir}/slurmctld.pid"; do
    if [ -f "${f}" ]; then
      pid=$(cat "${f}")
      kill "${pid}" 2>/dev/null || true
      for _ in $(seq 50); do kill -0 "${pid}" 2>/dev/null || break; sleep 0.1; done
      kill -9 "${pid}" 2>/dev/null || true
      rm -f "${f}"
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
ports=()
while [ ${#ports[@]} -lt $(( nodes + 1 )) ]; do
  p=$(free_port)
  [[ " ${ports[*]} " == *" ${p} "* ]] || ports+=("${p}")
done
ctld_port=${ports[0]}
mem_mb=$(awk '/MemTotal/ {print int($2 / 1024 * 0.9)}' /proc/meminfo)
# the machine's cores (not nproc: it counts OMP_NUM_THREADS and this process's affinity, e.g. pytest run
# with OMP_NUM_THREADS=1 would get a one-core node whose jobs then all run one after the other)
cpus=$(getconf _NPROCESSORS_ONLN)
if [ "${nodes}" = 1 ]; then
  names=("${host}")
  node_lines="NodeName=${host} NodeAddr=127.0.0.1 Port=${ports[1]} CPUs=${cpus} RealMemory=${mem_mb} State=UNKNOWN"
else
  names=(); node_lines=""
  for i in $(seq "${nodes}"); do
    names+=("${host}-${i}")
    node_lines+="NodeName=${host}-${i} NodeHostname=${host} NodeAddr=127.0.0.1 Port=${ports[i]} CPUs=${cpus} "
    node_lines+="RealMemory=$(( mem_mb / nodes )) State=UNKNOWN"$'\n'
  done
fi
node_list=$(IFS=,; echo "${names[*]}")
cat > "${dir}/slurm.conf" <<EOF
ClusterName=asrgr$$
SlurmctldHost=${host}(127.0.0.1)
SlurmctldPort=${ctld_port}
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
SlurmdSpoolDir=${dir}/spool/%n
SlurmctldPidFile=${dir}/slurmctld.pid
SlurmdPidFile=${dir}/slurmd.%n.pid
SlurmctldLogFile=${dir}/slurmctld.log
SlurmdLogFile=${dir}/slurmd.%n.log
${node_lines}
PartitionName=local Nodes=${node_list} Default=YES MaxTime=INFINITE State=UP
EOF
export SLURM_CONF=${dir}/slurm.conf
slurmctld -f "${SLURM_CONF}" || skip "slurmctld did not start (see ${dir}/slurmctld.log)"
for n in "${names[@]}"; do
  if [ "${nodes}" = 1 ]; then slurmd -f "${SLURM_CONF}"; else slurmd -f "${SLURM_CONF}" -N "${n}"; fi \
    || { "$0" stop "${dir}"; skip "slurmd of node ${n} did not start (see ${dir}/slurmd.${n}.log)"; }
done
for _ in $(seq 300); do
  state=$(sinfo -h -N -o %T 2>/dev/null | sort | uniq -c | xargs || true)
  [ "${state}" = "${nodes} idle" ] && { echo "export SLURM_CONF=${SLURM_CONF}"; exit 0; }
  sleep 0.1
done
"$0" stop "${dir}"
skip "the nodes did not become idle within 30 s (states '${state:-}'; see ${dir}/slurmctld.log, ${dir}/slurmd.*.log)"
