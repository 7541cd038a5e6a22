# Shared paths and helpers for up.sh / down.sh (sourced, not executed).
# shellcheck shell=bash

# Repo root comes from this file's location: CI runs from a fresh clone elsewhere.
CLUSTER_SRC="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
REPO_ROOT="$(cd "$CLUSTER_SRC/.." && pwd)"
STATE="$(realpath -m "${FIRECREST_MESH_STATE:-$REPO_ROOT/state}")"
C="$STATE/cluster"

ETC="$C/etc"                       # slurm.conf + slurmdbd.conf (slurmdbd looks beside slurm.conf)
export SLURM_CONF="$ETC/slurm.conf"
SYSTEM_SLURM_CONF=/etc/slurm/slurm.conf   # what non-interactive ssh sessions read

MUNGE_DIR="$C/munge"
MUNGE_SOCKET=/run/munge/munge.socket.2    # default socket: every client finds it without flags
MUNGE_PID="$MUNGE_DIR/munged.pid"

DB_DIR="$C/mariadb"
DB_PORT=3307
DB_SOCK="$DB_DIR/mariadb.sock"
DB_PID="$DB_DIR/mariadb.pid"
DB_PASS_FILE="$DB_DIR/slurmdbd.password"

SLURM_DIR="$C/slurm"
SLURM_LOG="$SLURM_DIR/log"
SLURM_RUN="$SLURM_DIR/run"
DBD_PID="$SLURM_RUN/slurmdbd.pid"
CTLD_PID="$SLURM_RUN/slurmctld.pid"
SLURMD_PID="$SLURM_RUN/slurmd.pid"

SSHD_DIR="$C/sshd"
SSH_PORT=2222
SSHD_CONFIG="$SSHD_DIR/sshd_config"
SSHD_PID="$SSHD_DIR/sshd.pid"
KNOWN_HOSTS="$C/known_hosts"
CA_PUB="$STATE/certificator/ca.pub"

# Users as "name default-account other-accounts...": the health checker's service account here; the
# test users come from the project configuration (`test_users`, printed by test_users.py).
SERVICE_USERS=("firecrest staff")

log() { echo "cluster: $*" >&2; }
die() { echo "cluster: ERROR: $*" >&2; exit 1; }

# true if PID runs and is not a zombie: this machine's init reaps exited
# daemons only every second or two, and kill -0 succeeds on a zombie.
running() {
  local st
  st=$(sed 's/.*) //' "/proc/$1/stat" 2>/dev/null | cut -d' ' -f1) || return 1
  [[ -n $st ]] || return 1
  # a zombie leader whose other threads still run is still running
  [[ $st != Z ]] || (($(ls "/proc/$1/task" 2>/dev/null | wc -l) > 1))
}

# pid from a pid file, if that process is alive and is the expected program
# (guards against a stale pid file whose pid was reused).
pid_of() {
  local file=$1 comm=$2 pid
  [[ -s $file ]] || return 1
  pid=$(tr -dc 0-9 <"$file")
  [[ -n $pid ]] && running "$pid" || return 1
  [[ $(cat "/proc/$pid/comm" 2>/dev/null) == "$comm" ]] || return 1
  echo "$pid"
}

# retry CMD... every 0.2 s until it succeeds or SECONDS_LIMIT passes.
wait_for() {
  local limit=$1; shift
  local deadline=$((SECONDS + limit))
  until "$@" >/dev/null 2>&1; do
    ((SECONDS < deadline)) || return 1
    sleep 0.2
  done
}

not_running() { ! running "$1"; }

# TERM the daemon in FILE and wait for it to exit (KILL after 30 s).
stop_pidfile() {
  local name=$1 file=$2 comm=$3 pid
  if pid=$(pid_of "$file" "$comm"); then
    kill -TERM "$pid" 2>/dev/null || true
    if ! wait_for 30 not_running "$pid"; then
      log "$name (pid $pid) ignored TERM, killing"
      kill -KILL "$pid" 2>/dev/null || true
      wait_for 5 not_running "$pid" || true
    fi
    log "stopped $name (pid $pid)"
  fi
  rm -f "$file"
}
