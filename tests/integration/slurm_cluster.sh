#!/usr/bin/env bash
# A one-node SLURM cluster on this machine, for tests/integration/test_slurm.py.
#
#   slurm_cluster.sh start [STATE_DIR]   munged, slurmctld and slurmd, all state in STATE_DIR
#   slurm_cluster.sh stop  [STATE_DIR]   stops exactly the daemons `start` recorded there
#
# STATE_DIR defaults to $CNNATLAS_SLURM_DIR, else /tmp/cnnatlas-slurm. Clients find the
# cluster through /etc/slurm/slurm.conf, which `start` links to STATE_DIR/slurm.conf and
# `stop` removes (SLURM_CONF is not enough: the plugin's job step drops every SLURM_*
# variable before its nested srun). It refuses to touch an /etc/slurm/slurm.conf of the
# machine's own. Needs root and the Debian packages slurmctld slurmd slurm-client munge;
# no systemd. The node declares two fake GPUs
# (gres.conf File= character devices) so that `--gpus=1` jobs are scheduled, and
# MinJobAge=300 keeps finished jobs visible to squeue, which the test profile polls.
set -euo pipefail

cmd="${1:-}"
state="${2:-${CNNATLAS_SLURM_DIR:-/tmp/cnnatlas-slurm}}"
node=localnode
partition=cnnatlas-test
etc_conf=/etc/slurm/slurm.conf

pid_of() { [ -s "$state/$1.pid" ] && cat "$state/$1.pid"; }

alive() { local pid; pid="$(pid_of "$1")" && kill -0 "$pid" 2>/dev/null; }

wait_for() { # wait_for SECONDS DESCRIPTION COMMAND...
  local secs="$1" what="$2"
  shift 2
  for _ in $(seq $((secs * 5))); do
    if "$@" >/dev/null 2>&1; then return 0; fi
    sleep 0.2
  done
  echo "slurm_cluster: $what did not happen within ${secs}s; logs in $state" >&2
  tail -n 20 "$state"/*.log >&2 || true
  return 1
}

write_conf() {
  local host
  host="$(hostname -s)"
  cat >"$state/slurm.conf" <<EOF
ClusterName=cnnatlas
SlurmctldHost=$host(127.0.0.1)
SlurmctldPort=16817
SlurmdPort=16818
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
AuthInfo=socket=$state/munge/munge.socket
CredType=cred/munge
StateSaveLocation=$state/ctld
SlurmdSpoolDir=$state/spool
SlurmctldPidFile=$state/slurmctld.pid
SlurmdPidFile=$state/slurmd.pid
SlurmctldLogFile=$state/slurmctld.log
SlurmdLogFile=$state/slurmd.log
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
SelectType=select/cons_tres
SelectTypeParameters=CR_CPU_Memory
DefMemPerCPU=500
SlurmdParameters=config_overrides
ReturnToService=2
MinJobAge=300
GresTypes=gpu
AccountingStorageType=accounting_storage/none
JobAcctGatherType=jobacct_gather/none
JobCompType=jobcomp/none
MpiDefault=none
MailProg=/bin/true
SwitchType=switch/none
NodeName=$node NodeAddr=127.0.0.1 CPUs=4 RealMemory=64000 Gres=gpu:fake:2 State=UNKNOWN
PartitionName=$partition Nodes=$node Default=YES MaxTime=INFINITE State=UP
EOF
  cat >"$state/gres.conf" <<EOF
NodeName=$node Name=gpu Type=fake File=$state/dev/fakegpu[0-1]
EOF
}

start() {
  for prog in munged slurmctld slurmd sbatch; do
    command -v "$prog" >/dev/null || {
      echo "slurm_cluster: $prog not found; apt-get install slurmctld slurmd slurm-client munge" >&2
      exit 1
    }
  done
  if alive munged || alive slurmctld || alive slurmd; then
    echo "slurm_cluster: already running from $state; stop it first" >&2
    exit 1
  fi
  if [ -e "$etc_conf" ] && [ "$(readlink "$etc_conf")" != "$state/slurm.conf" ]; then
    echo "slurm_cluster: $etc_conf belongs to this machine's SLURM; not starting a test cluster" >&2
    exit 1
  fi
  rm -rf "$state"
  mkdir -p "$state"/{ctld,spool,dev,munge}
  chmod 755 "$state"
  # gres.conf wants character devices; these behave like /dev/null.
  mknod "$state/dev/fakegpu0" c 1 3
  mknod "$state/dev/fakegpu1" c 1 3
  write_conf

  dd if=/dev/urandom of="$state/munge/munge.key" bs=1024 count=1 status=none
  chown -R munge:munge "$state/munge"
  chmod 700 "$state/munge"
  chmod 400 "$state/munge/munge.key"
  runuser -u munge -- munged --force --key-file="$state/munge/munge.key" \
    --socket="$state/munge/munge.socket" --pid-file="$state/munge/munged.pid" \
    --log-file="$state/munge/munged.log" --seed-file="$state/munge/munged.seed"
  wait_for 10 "munged start" test -s "$state/munge/munged.pid"
  cp "$state/munge/munged.pid" "$state/munged.pid"

  mkdir -p "$(dirname "$etc_conf")"
  ln -sfn "$state/slurm.conf" "$etc_conf"
  export SLURM_CONF="$state/slurm.conf"
  slurmctld -f "$SLURM_CONF"
  wait_for 20 "slurmctld start" scontrol ping
  slurmd -f "$SLURM_CONF" -N "$node"
  wait_for 30 "node $node idle" sh -c "sinfo -h -n $node -o %t | grep -qx idle"
  echo "slurm_cluster: up ($etc_conf -> $SLURM_CONF, partition $partition, pids" \
    "$(pid_of munged) $(pid_of slurmctld) $(pid_of slurmd))"
}

stop() {
  local pid
  for daemon in slurmd slurmctld munged; do
    pid="$(pid_of "$daemon")" || continue
    if kill -0 "$pid" 2>/dev/null; then
      kill "$pid"
      for _ in $(seq 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.2; done
      kill -0 "$pid" 2>/dev/null && kill -9 "$pid"
    fi
    rm -f "$state/$daemon.pid"
  done
  if [ "$(readlink "$etc_conf")" = "$state/slurm.conf" ]; then rm -f "$etc_conf"; fi
  echo "slurm_cluster: stopped ($state)"
}

case "$cmd" in
  start) start ;;
  stop) stop ;;
  *)
    echo "usage: $0 start|stop [STATE_DIR]" >&2
    exit 2
    ;;
esac
