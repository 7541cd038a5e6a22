#!/usr/bin/env bash
# Start the single-node HPC system on loopback: munged, MariaDB (3307),
# slurmdbd (6819), slurmctld (6817), slurmd (6818) and sshd (2222).
# Idempotent: starts only what is not running, returns quickly when healthy.
# All state lives in $FIRECREST_MESH_STATE/cluster (default <repo>/state/cluster).
set -euo pipefail
umask 022   # daemons, users and job steps must be able to read what we write
# shellcheck source=common.sh
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"

[[ $(id -u) -eq 0 ]] || die "up.sh must run as root"
for bin in slurmctld slurmd slurmdbd sacctmgr munged mariadbd mariadb-install-db; do
  command -v "$bin" >/dev/null || die "$bin missing: run cluster/install-packages.sh first"
done
[[ -x /usr/sbin/sshd ]] || die "sshd missing: run cluster/install-packages.sh first"

START=$SECONDS
mkdir -p "$C"
exec 9>"$C/.lock"
# one up.sh/down.sh at a time; daemons are started with 9>&- so they never inherit the lock
flock -w 300 9 || die "another up.sh/down.sh holds $C/.lock"

# write_if_changed FILE MODE: stdin -> FILE; exit 0 if the content changed.
write_if_changed() {
  local file=$1 mode=$2 tmp
  tmp=$(mktemp "$file.XXXXXX")
  cat >"$tmp"
  chmod "$mode" "$tmp"
  if [[ -f $file ]] && cmp -s "$tmp" "$file"; then
    rm -f "$tmp"
    chmod "$mode" "$file"
    return 1
  fi
  mv -f "$tmp" "$file"
}

show_log() { log "last lines of $1:"; tail -n 20 "$1" >&2 2>/dev/null || true; }

# --- state dir reachable by daemons/users ----------------------------------
# munged runs as user munge and job steps run as alice/bob from the slurmd
# spool dir, so every folder above $STATE must be searchable (o+x).
d=$(dirname "$STATE")
while [[ $d != / ]]; do
  if [[ -z $(find "$d" -maxdepth 0 -perm -o+x) ]]; then
    log "making $d searchable (o+x) so munge and job steps can reach $STATE"
    chmod o+x "$d"
  fi
  d=$(dirname "$d")
done
mkdir -p "$ETC" "$SLURM_LOG" "$SLURM_RUN" "$SLURM_DIR/ctld" "$SLURM_DIR/slurmd"
chmod 755 "$STATE" "$C" "$ETC" "$SLURM_DIR"

# --- loopback without delayed ACKs -------------------------------------------
# slurmdbd answers in two writes (length, then body) on a socket without TCP_NODELAY, so every sacct
# waited twice for the client's delayed ACK (~40 ms each): 95 ms for one job's record, 5 ms without
# the stalls (strace of sacct). `quickack` on the loopback route turns delayed ACKs off for every
# connection over it: the local system's daemons, sshd and the mesh alike. A site with a remote
# slurmdbd sees the same stall and the same cure on the route to that host. Best effort: a
# container without CAP_NET_ADMIN keeps the kernel's default and is only slower.
if ! ip route show table local 127.0.0.1 | grep -q quickack; then
  ip route change table local local 127.0.0.1 dev lo proto kernel scope host src 127.0.0.1 quickack 1 \
    || log "could not set quickack on the loopback route: sacct keeps its ~90 ms of delayed-ACK stalls"
fi

# --- users ------------------------------------------------------------------
py=$REPO_ROOT/.venv/bin/python
[[ -x $py ]] || py=python3   # test_users.py needs only PyYAML
specs=$("$py" "$CLUSTER_SRC/test_users.py") || die "cannot read test_users from the configuration"
USER_SPECS=()
while read -r spec; do [[ -z $spec ]] || USER_SPECS+=("$spec"); done <<<"$specs"
USER_SPECS+=("${SERVICE_USERS[@]}")
for spec in "${USER_SPECS[@]}"; do
  read -r u _ <<<"$spec"
  id -u "$u" >/dev/null 2>&1 || useradd --create-home --home-dir "/home/$u" --shell /bin/bash "$u"
  # a locked account ("!" in shadow) is refused by sshd even with a valid certificate
  [[ $(getent shadow "$u" | cut -d: -f2) == '*' ]] || usermod -p '*' "$u"
  chmod 0750 "/home/$u"   # group is the user's private group: bob cannot read alice's home
  install -d -o "$u" -g "$u" -m 0700 "/scratch/$u"
done
chmod 0755 /scratch

# --- munge ------------------------------------------------------------------
install -d -o munge -g munge -m 0700 "$MUNGE_DIR"
if [[ ! -s $MUNGE_DIR/munge.key ]]; then
  head -c 1024 /dev/urandom >"$MUNGE_DIR/munge.key"
fi
chown munge:munge "$MUNGE_DIR/munge.key"
chmod 0400 "$MUNGE_DIR/munge.key"
install -d -o munge -g munge -m 0755 /run/munge
munge_ok() { munge -n -S "$MUNGE_SOCKET" | unmunge -S "$MUNGE_SOCKET"; }
if ! pid_of "$MUNGE_PID" munged >/dev/null; then
  if munge_ok >/dev/null 2>&1; then
    # a munged we did not start (e.g. the distro's) already serves the socket: use it
    log "WARNING: a foreign munged serves $MUNGE_SOCKET; using it (down.sh will not stop it)"
  else
    log "starting munged"
    runuser -u munge -- /usr/sbin/munged --socket="$MUNGE_SOCKET" \
      --key-file="$MUNGE_DIR/munge.key" --pid-file="$MUNGE_PID" \
      --log-file="$MUNGE_DIR/munged.log" --seed-file="$MUNGE_DIR/munged.seed" 9>&- \
      || { show_log "$MUNGE_DIR/munged.log"; die "munged failed to start"; }
  fi
fi
wait_for 20 munge_ok || { show_log "$MUNGE_DIR/munged.log"; die "munge -n | unmunge fails"; }

# --- MariaDB ----------------------------------------------------------------
install -d -m 0700 "$DB_DIR"
if [[ ! -d $DB_DIR/data/mysql ]]; then
  log "initialising MariaDB datadir"
  rm -rf "$DB_DIR/data"
  # --no-defaults: never read the distro's /etc/mysql config (port 3306, /run/mysqld)
  mariadb-install-db --no-defaults --user=root --datadir="$DB_DIR/data" \
    --auth-root-authentication-method=socket --skip-test-db \
    >"$DB_DIR/install.log" 2>&1 || { show_log "$DB_DIR/install.log"; die "mariadb-install-db failed"; }
fi
db() { mariadb --no-defaults --socket="$DB_SOCK" --user=root "$@"; }
if ! pid_of "$DB_PID" mariadbd >/dev/null; then
  log "starting mariadbd on 127.0.0.1:$DB_PORT"
  # Its own session: mariadbd does not daemonize, and a caller that ends its process group
  # (a CI step, a tool's shell) must not take the database down with it.
  setsid nohup mariadbd --no-defaults --user=root --datadir="$DB_DIR/data" \
    --bind-address=127.0.0.1 --port="$DB_PORT" --socket="$DB_SOCK" \
    --pid-file="$DB_PID" --log-error="$DB_DIR/mariadb.log" --skip-name-resolve \
    --innodb-buffer-pool-size=1024M --innodb-lock-wait-timeout=900 \
    </dev/null >>"$DB_DIR/mariadb.log" 2>&1 9>&- &
fi
wait_for 60 db -e 'SELECT 1' || { show_log "$DB_DIR/mariadb.log"; die "MariaDB not answering on $DB_SOCK"; }

# password generated once, kept only in the state dir (never committed)
if [[ ! -s $DB_PASS_FILE ]]; then
  (umask 077; head -c 24 /dev/urandom | base64 | tr -dc 'A-Za-z0-9' >"$DB_PASS_FILE")
fi
DB_PASS=$(cat "$DB_PASS_FILE")
db <<SQL
CREATE DATABASE IF NOT EXISTS slurm_acct_db;
CREATE USER IF NOT EXISTS 'slurm'@'127.0.0.1' IDENTIFIED BY '$DB_PASS';
CREATE USER IF NOT EXISTS 'slurm'@'localhost' IDENTIFIED BY '$DB_PASS';
ALTER USER 'slurm'@'127.0.0.1' IDENTIFIED BY '$DB_PASS';
ALTER USER 'slurm'@'localhost' IDENTIFIED BY '$DB_PASS';
GRANT ALL ON slurm_acct_db.* TO 'slurm'@'127.0.0.1';
GRANT ALL ON slurm_acct_db.* TO 'slurm'@'localhost';
SQL

# --- Slurm config -----------------------------------------------------------
HOST=$(hostname -s 2>/dev/null || hostname)
# a bit below the machine's memory, so slurmd never reports less than configured
MEM_MB=$(awk '/^MemTotal:/ {print int($2/1024)}' /proc/meminfo)
REAL_MEM=$((MEM_MB * 9 / 10))

slurm_changed=0
write_if_changed "$SLURM_CONF" 644 <<EOF && slurm_changed=1 || true
# Generated by cluster/up.sh -- edits are overwritten.
ClusterName=local
SlurmctldHost=$HOST(127.0.0.1)
SlurmctldPort=6817
SlurmdPort=6818
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
CredType=cred/munge
MpiDefault=none
SwitchType=switch/none
MailProg=/bin/true
PlugStackConfig=$ETC/plugstack.conf

# no systemd/cgroups here
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
JobAcctGatherType=jobacct_gather/none

# many 1-cpu jobs at once: 8 configured CPUs (config_overrides) on a 2-core box
SchedulerType=sched/backfill
SelectType=select/cons_tres
SelectTypeParameters=CR_Core
SlurmdParameters=config_overrides
ReturnToService=2
MinJobAge=300

AccountingStorageType=accounting_storage/slurmdbd
AccountingStorageHost=localhost
AccountingStoragePort=6819
AccountingStorageEnforce=associations
JobCompType=jobcomp/none

StateSaveLocation=$SLURM_DIR/ctld
SlurmdSpoolDir=$SLURM_DIR/slurmd
SlurmctldPidFile=$CTLD_PID
SlurmdPidFile=$SLURMD_PID
SlurmctldLogFile=$SLURM_LOG/slurmctld.log
SlurmdLogFile=$SLURM_LOG/slurmd.log
SlurmctldDebug=info
SlurmdDebug=info

NodeName=node01 NodeHostname=$HOST NodeAddr=127.0.0.1 CPUs=8 Boards=1 SocketsPerBoard=1 CoresPerSocket=8 ThreadsPerCore=1 RealMemory=$REAL_MEM State=UNKNOWN
PartitionName=normal Nodes=node01 Default=YES MaxTime=INFINITE State=UP
# The storage service's transfer jobs (datatransfer_jobs_directives in config/local.yaml): scheduled
# before the compute partitions' jobs, so a copy or an upload does not queue behind them.
PartitionName=xfer Nodes=node01 MaxTime=INFINITE State=UP PriorityTier=10
PartitionName=debug Nodes=node01 MaxTime=INFINITE State=UP Hidden=YES
EOF

# slurmdbd reads slurmdbd.conf beside slurm.conf; it must be 600 and owned by SlurmUser
dbd_changed=0
write_if_changed "$ETC/slurmdbd.conf" 600 <<EOF && dbd_changed=1 || true
# Generated by cluster/up.sh -- edits are overwritten.
AuthType=auth/munge
DbdHost=localhost
DbdAddr=127.0.0.1
DbdPort=6819
SlurmUser=root
PidFile=$DBD_PID
LogFile=$SLURM_LOG/slurmdbd.log
DebugLevel=info
StorageType=accounting_storage/mysql
StorageHost=127.0.0.1
StoragePort=$DB_PORT
StorageUser=slurm
StoragePass=$DB_PASS
StorageLoc=slurm_acct_db
EOF
chown root:root "$ETC/slurmdbd.conf"

# Non-interactive ssh sessions know nothing of SLURM_CONF: point the default path at ours.
if [[ $(readlink "$SYSTEM_SLURM_CONF" 2>/dev/null) != "$SLURM_CONF" ]]; then
  mkdir -p /etc/slurm
  if [[ -f $SYSTEM_SLURM_CONF && ! -L $SYSTEM_SLURM_CONF ]]; then
    mv "$SYSTEM_SLURM_CONF" "$SYSTEM_SLURM_CONF.orig"   # keep a hand-made config
  fi
  ln -sfn "$SLURM_CONF" "$SYSTEM_SLURM_CONF"
fi

# a changed config takes effect by restarting the daemons that read it
if ((dbd_changed)) && pid_of "$DBD_PID" slurmdbd >/dev/null; then
  log "slurmdbd.conf changed: restarting slurmdbd"
  stop_pidfile slurmdbd "$DBD_PID" slurmdbd
fi
if ((slurm_changed)); then
  # Running daemons re-read it (partitions, limits); only what reconfigure cannot change (e.g. a
  # node's CPUs or ports) needs the restart that follows a failed reconfigure.
  if pid_of "$SLURMD_PID" slurmd >/dev/null && pid_of "$CTLD_PID" slurmctld >/dev/null &&
     scontrol reconfigure >/dev/null 2>&1; then
    log "slurm.conf changed: slurmctld and slurmd reconfigured"
  else
    if pid_of "$SLURMD_PID" slurmd >/dev/null || pid_of "$CTLD_PID" slurmctld >/dev/null; then
      log "slurm.conf changed: restarting slurmctld and slurmd"
    fi
    stop_pidfile slurmd "$SLURMD_PID" slurmd
    stop_pidfile slurmctld "$CTLD_PID" slurmctld
  fi
fi

# --- slurmdbd ---------------------------------------------------------------
if ! pid_of "$DBD_PID" slurmdbd >/dev/null; then
  log "starting slurmdbd on 127.0.0.1:6819"
  slurmdbd 9>&- || { show_log "$SLURM_LOG/slurmdbd.log"; die "slurmdbd failed to start"; }
fi
wait_for 60 sacctmgr -n show cluster || { show_log "$SLURM_LOG/slurmdbd.log"; die "slurmdbd not answering"; }

# --- accounting: cluster first, so slurmctld registers into an existing cluster
assocs() { sacctmgr -n -P show assoc format=cluster,account,user; }
A=$(assocs)
if ! grep -q '^local|root|' <<<"$A"; then
  sacctmgr -i add cluster local >/dev/null
  A=$(assocs)
fi
declare -A ACCOUNTS=()
for spec in "${USER_SPECS[@]}"; do
  read -r _ accts <<<"$spec"
  for acct in $accts; do ACCOUNTS[$acct]=1; done
done
for acct in "${!ACCOUNTS[@]}"; do
  grep -q "^local|$acct|$" <<<"$A" ||
    sacctmgr -i add account "$acct" cluster=local description="$acct" organization=firecrest-mesh >/dev/null
done
# name default-account other-accounts...
for spec in "${USER_SPECS[@]}"; do
  read -r u def other <<<"$spec"
  for acct in $def $other; do
    grep -q "^local|$acct|$u$" <<<"$A" ||
      sacctmgr -i add user "$u" account="$acct" defaultaccount="$def" cluster=local >/dev/null
  done
done

# --- slurmctld + slurmd -----------------------------------------------------
if ! pid_of "$CTLD_PID" slurmctld >/dev/null; then
  log "starting slurmctld on 127.0.0.1:6817"
  slurmctld 9>&- || { show_log "$SLURM_LOG/slurmctld.log"; die "slurmctld failed to start"; }
fi
wait_for 60 scontrol ping || { show_log "$SLURM_LOG/slurmctld.log"; die "slurmctld not answering"; }
if ! pid_of "$SLURMD_PID" slurmd >/dev/null; then
  log "starting slurmd (node01) on 127.0.0.1:6818"
  slurmd -N node01 9>&- || { show_log "$SLURM_LOG/slurmd.log"; die "slurmd failed to start"; }
fi

node_state() { sinfo -h -n node01 -o %T | head -n1; }
node_idle() {
  local s
  s=$(node_state)
  case $s in
    idle|mixed|allocated|completing) return 0 ;;
    down*|drain*|fail*) scontrol update nodename=node01 state=resume >/dev/null 2>&1 || true ;;
  esac
  return 1
}
wait_for 60 node_idle || { show_log "$SLURM_LOG/slurmd.log"; die "node01 not idle (state: $(node_state))"; }

# --- sshd -------------------------------------------------------------------
install -d -m 0700 "$SSHD_DIR"
install -d -m 0755 /run/sshd   # privilege-separation dir sshd insists on
if [[ ! -s $SSHD_DIR/ssh_host_ed25519_key ]]; then
  ssh-keygen -q -t ed25519 -N '' -C "firecrest-mesh-cluster" -f "$SSHD_DIR/ssh_host_ed25519_key"
fi
sshd_changed=0
# ca.pub belongs to the certificator and may appear later: sshd reads it per authentication
write_if_changed "$SSHD_CONFIG" 600 <<EOF && sshd_changed=1 || true
# Generated by cluster/up.sh -- edits are overwritten.
Port $SSH_PORT
ListenAddress 127.0.0.1
HostKey $SSHD_DIR/ssh_host_ed25519_key
PidFile $SSHD_PID
LogLevel INFO
TrustedUserCAKeys $CA_PUB
PubkeyAuthentication yes
AuthorizedKeysFile none
PasswordAuthentication no
KbdInteractiveAuthentication no
PermitRootLogin no
AllowTcpForwarding no
X11Forwarding no
AllowAgentForwarding no
PermitTunnel no
UsePAM no
PrintMotd no
Subsystem sftp internal-sftp
EOF
/usr/sbin/sshd -t -f "$SSHD_CONFIG" || die "sshd config $SSHD_CONFIG is invalid"
if ((sshd_changed)) && pid_of "$SSHD_PID" sshd >/dev/null; then
  log "sshd_config changed: restarting sshd"
  stop_pidfile sshd "$SSHD_PID" sshd
fi
if ! pid_of "$SSHD_PID" sshd >/dev/null; then
  log "starting sshd on 127.0.0.1:$SSH_PORT"
  /usr/sbin/sshd -f "$SSHD_CONFIG" -E "$SSHD_DIR/sshd.log" 9>&- ||
    { show_log "$SSHD_DIR/sshd.log"; die "sshd failed to start"; }
fi
# clients pin the host key with this file
write_if_changed "$KNOWN_HOSTS" 644 \
  <<<"[127.0.0.1]:$SSH_PORT $(cut -d' ' -f1,2 "$SSHD_DIR/ssh_host_ed25519_key.pub")" || true

ssh_banner() { timeout 3 bash -c "exec 3<>/dev/tcp/127.0.0.1/$SSH_PORT && head -c 8 <&3" | grep -q '^SSH-2.0'; }
wait_for 30 ssh_banner || { show_log "$SSHD_DIR/sshd.log"; die "sshd not answering on $SSH_PORT"; }

# --- final health check -----------------------------------------------------
sacctmgr -n -P show assoc user=alice format=user | grep -q '^alice$' || die "alice has no association"
echo "cluster up in $((SECONDS - START))s: node01 $(node_state), slurmctld :6817, slurmd :6818, slurmdbd :6819, mariadb :$DB_PORT, sshd :$SSH_PORT, SLURM_CONF=$SLURM_CONF, state=$C"
