#!/usr/bin/env bash
# Start a single-node Slurm (munge, slurmctld, slurmd) on 127.0.0.1, for the live Slurm tests.
#
# Idempotent: safe to run again; it installs what is missing, rewrites slurm.conf only when it
# changed, starts only the daemons that are not running, and waits until the node is idle.
# Runs as root on Debian (daemons started directly, no systemd). Afterwards clients need
#   export SLURM_CONF=/etc/slurm/slurm.conf      (the last line printed is that assignment)
set -euo pipefail

CONF_DIR=${SLURM_CONF_DIR:-/etc/slurm}
CONF=$CONF_DIR/slurm.conf
NODE=$(hostname -s)
CPUS=${SLURM_NODE_CPUS:-2}
LOG_DIR=/var/log/slurm

say() { echo "start-slurm: $*" >&2; }

if [ "$(id -u)" != 0 ]; then
    say "must run as root (it installs packages and starts daemons)"; exit 1
fi

# 1. packages
if ! command -v slurmctld >/dev/null || ! command -v slurmd >/dev/null || ! command -v munged >/dev/null; then
    say "installing slurm-wlm and munge"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    apt-get install -y -qq --no-install-recommends slurm-wlm munge >/dev/null
fi

# 2. munge: key dir 700, key 0400, all owned by munge; socket dir world-executable
install -d -o munge -g munge -m 0700 /etc/munge
install -d -o munge -g munge -m 0700 /var/lib/munge
install -d -o munge -g munge -m 0700 /var/log/munge
install -d -o munge -g munge -m 0755 /run/munge
if [ ! -s /etc/munge/munge.key ]; then
    say "creating the munge key"
    dd if=/dev/urandom of=/etc/munge/munge.key bs=1024 count=1 status=none
fi
chown munge:munge /etc/munge/munge.key
chmod 0400 /etc/munge/munge.key
if ! munge -n 2>/dev/null | unmunge >/dev/null 2>&1; then
    say "starting munged"
    runuser -u munge -- /usr/sbin/munged
    for _ in $(seq 50); do munge -n 2>/dev/null | unmunge >/dev/null 2>&1 && break; sleep 0.1; done
    munge -n | unmunge >/dev/null
fi

# 3. slurm.conf: one node named like this host, on loopback, no accounting, no cgroups
mem_mb=$(awk '/MemTotal/ {print int($2 / 1024 * 0.9)}' /proc/meminfo)
install -d -m 0755 "$CONF_DIR" "$LOG_DIR" /run/slurm /var/spool/slurmctld /var/spool/slurmd
new=$(mktemp)
cat >"$new" <<CONF
# written by .ci/start-slurm.sh: a single-node Slurm on 127.0.0.1 for tests
ClusterName=highrate
SlurmctldHost=$NODE(127.0.0.1)
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
CommunicationParameters=NoCtldInAddrAny,NoInAddrAny
MpiDefault=none
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
SelectType=select/cons_tres
SelectTypeParameters=CR_Core
SlurmdParameters=config_overrides
ReturnToService=2
AccountingStorageType=accounting_storage/none
JobAcctGatherType=jobacct_gather/none
JobCompType=jobcomp/none
StateSaveLocation=/var/spool/slurmctld
SlurmdSpoolDir=/var/spool/slurmd
SlurmctldPidFile=/run/slurm/slurmctld.pid
SlurmdPidFile=/run/slurm/slurmd.pid
SlurmctldLogFile=$LOG_DIR/slurmctld.log
SlurmdLogFile=$LOG_DIR/slurmd.log
SlurmctldTimeout=30
SlurmdTimeout=30
MinJobAge=60
NodeName=$NODE NodeAddr=127.0.0.1 CPUs=$CPUS RealMemory=$mem_mb State=UNKNOWN
PartitionName=debug Nodes=$NODE Default=YES MaxTime=INFINITE State=UP
CONF
changed=0
if ! cmp -s "$new" "$CONF"; then
    mv "$new" "$CONF"; chmod 0644 "$CONF"; changed=1
else
    rm -f "$new"
fi
export SLURM_CONF=$CONF

# 4. daemons (a changed conf while they run: reconfigure them)
running() { [ -s "$1" ] && kill -0 "$(cat "$1")" 2>/dev/null; }
if ! running /run/slurm/slurmctld.pid; then
    say "starting slurmctld"
    slurmctld -i
elif [ "$changed" = 1 ]; then
    say "slurm.conf changed: reconfiguring"
    scontrol reconfigure
fi
if ! running /run/slurm/slurmd.pid; then
    say "starting slurmd on node $NODE"
    slurmd
fi

# 5. wait for the node to be idle (resume it if an earlier run left it down or drained)
for i in $(seq 120); do
    state=$(sinfo -h -n "$NODE" -o %T 2>/dev/null | head -1 || true)
    case "$state" in
        idle|mixed|allocated) break ;;
        down*|drain*|fail*) scontrol update NodeName="$NODE" State=RESUME 2>/dev/null || true ;;
    esac
    sleep 0.5
    if [ "$i" = 120 ]; then
        say "node $NODE is not idle after 60 s (state: '${state:-no answer}'); see $LOG_DIR/"
        tail -n 20 "$LOG_DIR/slurmctld.log" "$LOG_DIR/slurmd.log" >&2 || true
        exit 1
    fi
done
say "node $NODE is $state"
echo "SLURM_CONF=$CONF"
