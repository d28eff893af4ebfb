#!/usr/bin/env bash
# Stop the cluster that start-cluster.sh started, by pid file (never by process name).
set -uo pipefail
for pidfile in /run/slurmd.pid /run/slurmctld.pid /run/munge/munged.pid; do
    if [ -f "$pidfile" ]; then
        kill "$(cat "$pidfile")" 2>/dev/null || true
    fi
done
echo "slurm: stopped"
