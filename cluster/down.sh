#!/usr/bin/env bash
# Stop the daemons that up.sh started (by their pid files), newest layer first.
# Idempotent; state stays on disk. `down.sh --purge` also deletes $STATE/cluster.
set -euo pipefail
# shellcheck source=common.sh
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"

purge=0
case "${1:-}" in
  "") ;;
  --purge) purge=1 ;;
  *) die "usage: down.sh [--purge]" ;;
esac
[[ $(id -u) -eq 0 ]] || die "down.sh must run as root"

if [[ ! -d $C ]]; then
  log "nothing to stop ($C does not exist)"
  exit 0
fi
exec 9>"$C/.lock"
flock -w 300 9 || die "another up.sh/down.sh holds $C/.lock"   # not while an up.sh is half-way

if ((purge)) && pid_of "$CTLD_PID" slurmctld >/dev/null; then
  # running job steps would otherwise outlive slurmd and keep using the deleted spool dir
  scancel --full --quiet --state=RUNNING 2>/dev/null || true
  scancel --quiet 2>/dev/null || true
  sleep 1
fi

stop_pidfile sshd "$SSHD_PID" sshd
stop_pidfile slurmd "$SLURMD_PID" slurmd
stop_pidfile slurmctld "$CTLD_PID" slurmctld
stop_pidfile slurmdbd "$DBD_PID" slurmdbd
stop_pidfile mariadbd "$DB_PID" mariadbd
stop_pidfile munged "$MUNGE_PID" munged

if ((purge)); then
  # the /etc/slurm/slurm.conf symlink would dangle: drop it if it is ours
  if [[ $(readlink "$SYSTEM_SLURM_CONF" 2>/dev/null) == "$SLURM_CONF" ]]; then
    rm -f "$SYSTEM_SLURM_CONF"
  fi
  rm -rf "$C"
  log "purged $C"
else
  log "stopped; state kept in $C"
fi
