#!/usr/bin/env bash
# Start a single-node SLURM cluster on this machine (no systemd, root): munge, slurmctld and
# slurmd with two fake GPUs, for the cluster tests. Idempotent; stop it with stop-cluster.sh.
# Needs: apt-get install -y --no-install-recommends slurmctld slurmd slurm-client munge
set -euo pipefail
CONF=/etc/slurm
CPUS=$(nproc)
# slurmd refuses a node with more memory than it has; take what it reports, minus a margin.
MEMORY=$(( $(slurmd -C | sed -n 's/.*RealMemory=\([0-9]*\).*/\1/p') * 9 / 10 ))

if sinfo -h -n localhost -o %T 2>/dev/null | grep -qx idle; then
    echo "slurm: already up"; exit 0
fi
mkdir -p "$CONF" /run/munge /var/lib/slurm/slurmctld /var/lib/slurm/slurmd /var/log/slurm \
    /run/fakegpu
chown munge:munge /run/munge
chown slurm:slurm /var/lib/slurm/slurmctld /var/log/slurm
# Two character devices stand in for GPUs: SLURM only needs files to hand out.
for gpu in 0 1; do
    [ -e /run/fakegpu/nvidia$gpu ] || mknod -m 666 /run/fakegpu/nvidia$gpu c 1 3
done
cat > "$CONF/slurm.conf" <<CONFIG
ClusterName=podium-ci
SlurmctldHost=localhost
SlurmUser=slurm
SlurmdUser=root
AuthType=auth/munge
CredType=cred/munge
StateSaveLocation=/var/lib/slurm/slurmctld
SlurmdSpoolDir=/var/lib/slurm/slurmd
SlurmctldPidFile=/run/slurmctld.pid
SlurmdPidFile=/run/slurmd.pid
SlurmctldLogFile=/var/log/slurm/slurmctld.log
SlurmdLogFile=/var/log/slurm/slurmd.log
ProctrackType=proctrack/linuxproc
TaskPlugin=task/affinity
JobAcctGatherType=jobacct_gather/none
SelectType=select/cons_tres
SelectTypeParameters=CR_Core_Memory
DefMemPerCPU=500
SchedulerType=sched/backfill
MpiDefault=none
ReturnToService=2
AccountingStorageType=accounting_storage/none
JobCompType=jobcomp/filetxt
JobCompLoc=/var/log/slurm/jobcomp.log
MinJobAge=300
GresTypes=gpu
NodeName=localhost NodeAddr=127.0.0.1 CPUs=$CPUS Boards=1 SocketsPerBoard=1 CoresPerSocket=$CPUS ThreadsPerCore=1 RealMemory=$MEMORY Gres=gpu:fake:2 State=UNKNOWN
PartitionName=debug Nodes=ALL Default=YES MaxTime=INFINITE State=UP
CONFIG
echo "NodeName=localhost Name=gpu Type=fake File=/run/fakegpu/nvidia[0-1]" > "$CONF/gres.conf"
# A drained node stays drained across restarts: start from a clean controller state.
rm -rf /var/lib/slurm/slurmctld/*
[ -f /run/munge/munged.pid ] && kill -0 "$(cat /run/munge/munged.pid)" 2>/dev/null \
    || runuser -u munge -- /usr/sbin/munged
/usr/sbin/slurmctld
/usr/sbin/slurmd -N localhost
for _ in $(seq 1 60); do
    if sinfo -h -n localhost -o %T 2>/dev/null | grep -qx idle; then
        echo "slurm: up ($CPUS CPUs, ${MEMORY} MB, 2 fake GPUs)"; exit 0
    fi
    sleep 0.5
done
echo "slurm: the node did not become idle in 30 s; see /var/log/slurm/" >&2
exit 1
