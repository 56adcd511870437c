#!/usr/bin/env bash
# A real one-node SLURM (Debian's 22.05 packages) on this machine, for the cluster tests and for trying the sweep
# as a cluster user would:  bash scripts/slurm_local.sh start|stop|status
#
#   start   installs the packages when missing (root), then starts munged, MariaDB, slurmdbd, slurmctld and
#           slurmd for this host with all its CPUs and memory, one default partition. Waits until the node is idle
#           and sacct answers. Running it again while the cluster runs only checks it.
#   stop    cancels the jobs still queued or running, stops every daemon `start` started; state is kept, so a
#           later `start` brings back the same cluster (job ids, accounting).
#   status  prints sinfo, squeue and whether each daemon runs.
#
# Config files go to /etc/slurm, where every client command (sbatch, srun, sacct, scontrol, scancel, and submitit
# through them) finds them without any environment. Everything else (state, spool, logs, pid files, the MariaDB
# data) lives in one folder: $LTH_SLURM_DIR, default /var/lib/lth-slurm.
set -euo pipefail

DIR=${LTH_SLURM_DIR:-/var/lib/lth-slurm}
ETC=/etc/slurm
CLUSTER=lth
# MariaDB only for slurmdbd: its own data folder, socket and port, so it never meets a MariaDB the host runs.
DB_PORT=${LTH_SLURM_DB_PORT:-16819}
DB_SOCKET=$DIR/mysqld/mysqld.sock
DB_NAME=slurm_acct_db
DB_USER=slurm
MUNGE_KEY=/etc/munge/munge.key
PACKAGES=(slurm-wlm slurmdbd munge mariadb-server)
MARK="# written by lth-plugins scripts/slurm_local.sh"
WAIT_S=${LTH_SLURM_WAIT_S:-90}

log() { echo "[slurm_local] $*" >&2; }
die() { log "error: $*"; exit 1; }

# --- helpers -----------------------------------------------------------------------------------------------------

pid_alive() {  # pid_alive DIR/NAME.pid: the pid in the file is a live process named NAME (not a reused pid)
  [ -s "$1" ] && [ "$(cat "/proc/$(cat "$1")/comm" 2>/dev/null)" = "$(basename "$1" .pid)" ]
}

wait_for() {  # wait_for SECONDS WHAT LOGFILE COMMAND...: poll COMMAND until it succeeds
  local limit=$1 what=$2 logfile=$3; shift 3
  local t0=$SECONDS
  until "$@" >/dev/null 2>&1; do
    if (( SECONDS - t0 >= limit )); then
      log "timed out after ${limit}s waiting for $what; read $logfile"
      [ -f "$logfile" ] && tail -n 20 "$logfile" >&2
      exit 1
    fi
    sleep 0.5
  done
}

stop_pidfile() {  # stop_pidfile NAME FILE: SIGTERM, then SIGKILL after 20 s
  local name=$1 file=$2 pid i
  pid_alive "$file" || { rm -f "$file"; return 0; }
  pid=$(cat "$file")
  kill "$pid" 2>/dev/null || true
  for ((i = 0; i < 40; i++)); do
    kill -0 "$pid" 2>/dev/null || { rm -f "$file"; log "$name stopped"; return 0; }
    sleep 0.5
  done
  log "$name (pid $pid) ignored SIGTERM for 20 s; killing it"
  kill -9 "$pid" 2>/dev/null || true
  rm -f "$file"
}

write_if_changed() {  # write_if_changed FILE MODE < content; returns 0 when the file changed
  local file=$1 mode=$2 tmp
  tmp=$(mktemp)
  cat >"$tmp"
  if [ -f "$file" ] && cmp -s "$tmp" "$file"; then rm -f "$tmp"; return 1; fi
  install -m "$mode" "$tmp" "$file"
  rm -f "$tmp"
  return 0
}

refuse_foreign() {  # never overwrite a SLURM config this script did not write
  if [ -f "$1" ] && ! grep -qF "$MARK" "$1"; then
    die "$1 exists and was not written by this script; move it away to use the local test cluster"
  fi
}

# --- packages ----------------------------------------------------------------------------------------------------

missing_packages() {
  local p
  for p in "${PACKAGES[@]}"; do
    dpkg-query -W -f='${Status}\n' "$p" 2>/dev/null | grep -q '^install ok installed$' || echo "$p"
  done
}

apt_install() { DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends "$@"; }

install_packages() {  # as root (cmd_start checked)
  local missing
  mapfile -t missing < <(missing_packages)
  [ ${#missing[@]} -eq 0 ] && return 0
  log "installing ${missing[*]}"
  # Package scripts must not start daemons (they would run with the packages' own configs): this script starts
  # them. A policy-rc.d the host already has is left as it is.
  local policy=/usr/sbin/policy-rc.d
  if [ ! -e "$policy" ]; then
    printf '#!/bin/sh\nexit 101\n' >"$policy"; chmod 755 "$policy"
    trap 'rm -f /usr/sbin/policy-rc.d' EXIT
  fi
  if ! apt_install "${missing[@]}" >"$DIR/log/apt.log" 2>&1; then
    log "install failed without an index update; running apt-get update"
    if ! { apt-get update && apt_install "${missing[@]}"; } >>"$DIR/log/apt.log" 2>&1; then
      tail -n 20 "$DIR/log/apt.log" >&2
      die "apt-get install -y --no-install-recommends ${missing[*]} failed; read $DIR/log/apt.log"
    fi
  fi
}

# --- munge -------------------------------------------------------------------------------------------------------

munge_ok() { munge -n </dev/null 2>/dev/null | unmunge >/dev/null 2>&1; }

start_munge() {
  if [ ! -s "$MUNGE_KEY" ]; then
    install -d -o munge -g munge -m 700 /etc/munge
    dd if=/dev/urandom of="$MUNGE_KEY" bs=1024 count=1 status=none
  fi
  chown munge:munge "$MUNGE_KEY"; chmod 400 "$MUNGE_KEY"
  if munge_ok; then return 0; fi
  # The socket stays where every client looks for it (/run/munge); pid, seed and log go to our folder.
  install -d -o munge -g munge -m 755 /run/munge
  install -d -o munge -g munge -m 700 "$DIR/munge"
  runuser -u munge -- munged --pid-file="$DIR/munge/munged.pid" --log-file="$DIR/munge/munged.log" \
    --seed-file="$DIR/munge/munged.seed" </dev/null >>"$DIR/log/munged.out" 2>&1 \
    || die "munged did not start; read $DIR/munge/munged.log and $DIR/log/munged.out"
  wait_for 20 "munged" "$DIR/munge/munged.log" munge_ok
  log "munged started"
}

stop_munge() {
  # only a munged this script started (its pid file is ours)
  stop_pidfile munged "$DIR/munge/munged.pid"
}

# --- MariaDB -----------------------------------------------------------------------------------------------------

db_sql() { mariadb --no-defaults --protocol=socket --socket="$DB_SOCKET" -uroot; }  # SQL on stdin
db_ok() { mariadb-admin --no-defaults --protocol=socket --socket="$DB_SOCKET" -uroot ping >/dev/null 2>&1; }

db_password() {  # a random local password, made once, readable by root only
  if [ ! -s "$DIR/dbpass" ]; then
    (umask 077; head -c 18 /dev/urandom | base64 | tr -d '/+=' >"$DIR/dbpass")
  fi
  cat "$DIR/dbpass"
}

start_mariadb() {
  if ! db_ok; then
    install -d -o mysql -g mysql -m 750 "$DIR/mysql"
    if [ ! -d "$DIR/mysql/mysql" ]; then
      mariadb-install-db --no-defaults --user=mysql --datadir="$DIR/mysql" --skip-test-db \
        --auth-root-authentication-method=socket >"$DIR/log/mariadb-install.log" 2>&1 \
        || die "mariadb-install-db failed; read $DIR/log/mariadb-install.log"
    fi
    # mysqld (user mysql) writes its socket, pid file and log here
    install -d -o mysql -g mysql -m 755 "$DIR/mysqld"
    # slurmdbd reaches it over TCP on 127.0.0.1 (it gives the client library no socket path)
    setsid mysqld_safe --no-defaults --user=mysql --datadir="$DIR/mysql" --socket="$DB_SOCKET" \
      --port="$DB_PORT" --bind-address=127.0.0.1 --pid-file="$DIR/mysqld/mariadbd.pid" \
      --log-error="$DIR/mysqld/mariadb.log" --innodb-buffer-pool-size=512M --innodb-lock-wait-timeout=900 \
      </dev/null >>"$DIR/log/mariadb.out" 2>&1 &
    wait_for 60 "MariaDB" "$DIR/mysqld/mariadb.log" db_ok
    log "MariaDB started"
  fi
  local pw; pw=$(db_password)
  db_sql <<SQL
CREATE DATABASE IF NOT EXISTS $DB_NAME;
CREATE USER IF NOT EXISTS '$DB_USER'@'localhost' IDENTIFIED BY '$pw';
CREATE USER IF NOT EXISTS '$DB_USER'@'127.0.0.1' IDENTIFIED BY '$pw';
ALTER USER '$DB_USER'@'localhost' IDENTIFIED BY '$pw';
ALTER USER '$DB_USER'@'127.0.0.1' IDENTIFIED BY '$pw';
GRANT ALL ON $DB_NAME.* TO '$DB_USER'@'localhost';
GRANT ALL ON $DB_NAME.* TO '$DB_USER'@'127.0.0.1';
SQL
}

stop_mariadb() {
  local file=$DIR/mysqld/mariadbd.pid pid i
  pid_alive "$file" || return 0
  pid=$(cat "$file")
  # a clean shutdown (mysqld removes its pid file; mysqld_safe then exits instead of restarting it)
  mariadb-admin --no-defaults --protocol=socket --socket="$DB_SOCKET" -uroot shutdown >/dev/null 2>&1 || true
  for ((i = 0; i < 60; i++)); do
    kill -0 "$pid" 2>/dev/null || { log "MariaDB stopped"; return 0; }
    sleep 0.5
  done
  echo "$pid" >"$file"
  stop_pidfile MariaDB "$file"
}

# --- slurmdbd ----------------------------------------------------------------------------------------------------

write_slurmdbd_conf() {
  refuse_foreign "$ETC/slurmdbd.conf"
  local pw; pw=$(db_password)
  # mode 600: it holds the database password, and slurmdbd refuses a config others can read
  write_if_changed "$ETC/slurmdbd.conf" 600 <<EOF
$MARK
AuthType=auth/munge
DbdHost=localhost
SlurmUser=root
PidFile=$DIR/run/slurmdbd.pid
LogFile=$DIR/log/slurmdbd.log
StorageType=accounting_storage/mysql
StorageHost=127.0.0.1
StoragePort=$DB_PORT
StorageUser=$DB_USER
StoragePass=$pw
StorageLoc=$DB_NAME
EOF
}

dbd_ok() { sacctmgr -n -P list cluster format=cluster; }

start_slurmdbd() {
  if write_slurmdbd_conf && pid_alive "$DIR/run/slurmdbd.pid"; then
    log "slurmdbd.conf changed; restarting slurmdbd"
    stop_pidfile slurmdbd "$DIR/run/slurmdbd.pid"
  fi
  if ! pid_alive "$DIR/run/slurmdbd.pid"; then
    slurmdbd </dev/null >>"$DIR/log/slurmdbd.out" 2>&1 || die "slurmdbd did not start; read $DIR/log/slurmdbd.log"
    log "slurmdbd started"
  fi
  wait_for "$WAIT_S" "slurmdbd to answer (sacctmgr list cluster)" "$DIR/log/slurmdbd.log" dbd_ok
  if ! dbd_ok | grep -qx "$CLUSTER"; then
    sacctmgr -i add cluster "$CLUSTER" >/dev/null
    log "cluster $CLUSTER registered in accounting"
  fi
}

stop_slurmdbd() { stop_pidfile slurmdbd "$DIR/run/slurmdbd.pid"; }

# --- slurmctld and slurmd ----------------------------------------------------------------------------------------

node_line() {
  # slurmd's own view of this host (sockets, cores, threads, memory), so the node is never "invalid";
  # its CPUs are the host's (nproc).
  slurmd -C | head -n 1 | sed 's/ UpTime=.*//'
}

write_slurm_conf() {
  local host=$1 node
  refuse_foreign "$ETC/slurm.conf"
  node=$(node_line)
  [[ $node == "NodeName=$host "* ]] || die "slurmd -C reported '$node', expected NodeName=$host"
  write_if_changed "$ETC/slurm.conf" 644 <<EOF
$MARK
ClusterName=$CLUSTER
SlurmctldHost=$host
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
CredType=cred/munge
# A requeued job waits cred_expire + 1 s before it may run again (default 120: two minutes of PENDING/BeginTime
# after every time-limit requeue). 10 s still leaves a launch on a loaded two-core host time to use its credential.
AuthInfo=cred_expire=10
StateSaveLocation=$DIR/ctld
SlurmdSpoolDir=$DIR/d
SlurmctldPidFile=$DIR/run/slurmctld.pid
SlurmdPidFile=$DIR/run/slurmd.pid
SlurmctldLogFile=$DIR/log/slurmctld.log
SlurmdLogFile=$DIR/log/slurmd.log
# no cgroups in this container: plain process tracking, no task binding
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
SelectType=select/cons_tres
SelectTypeParameters=CR_Core
JobAcctGatherType=jobacct_gather/linux
AccountingStorageType=accounting_storage/slurmdbd
AccountingStorageHost=localhost
JobCompType=jobcomp/none
MpiDefault=none
# no mail on this host (the default, /bin/mail, is missing and slurmctld logs an error for it)
MailProg=/bin/true
JobRequeue=1
ReturnToService=2
# Tests wait on the scheduler: look at pending jobs (a requeued one whose BeginTime passed) every few seconds,
# not every minute; give a signalled job 10 s before SIGKILL; forget finished jobs after 2 minutes (sacct keeps them).
SchedulerType=sched/backfill
SchedulerParameters=sched_interval=2,bf_interval=2
KillWait=10
MinJobAge=120
InactiveLimit=0
$node State=UNKNOWN
PartitionName=main Nodes=ALL Default=YES MaxTime=INFINITE State=UP
EOF
}

node_state() { sinfo -h -N -n "$1" -o '%T' 2>/dev/null | head -n 1; }

node_ready() {  # the node answers and can run jobs
  local s; s=$(node_state "$1")
  case "$s" in idle|mixed|allocated|completing) return 0 ;; *) return 1 ;; esac
}

sacct_ok() { sacct -n -X -S now-1minutes -o JobID; }

start_slurm() {  # start_slurm HOST CONF_CHANGED
  local host=$1 changed=$2
  if [ "$changed" -eq 1 ] && { pid_alive "$DIR/run/slurmctld.pid" || pid_alive "$DIR/run/slurmd.pid"; }; then
    log "slurm.conf changed; restarting slurmctld and slurmd"
    stop_pidfile slurmd "$DIR/run/slurmd.pid"
    stop_pidfile slurmctld "$DIR/run/slurmctld.pid"
  fi
  if ! pid_alive "$DIR/run/slurmctld.pid"; then
    slurmctld </dev/null >>"$DIR/log/slurmctld.out" 2>&1 || die "slurmctld did not start; read $DIR/log/slurmctld.log"
    log "slurmctld started"
  fi
  wait_for "$WAIT_S" "slurmctld to answer (scontrol ping)" "$DIR/log/slurmctld.log" \
    bash -c 'scontrol ping | grep -q UP'
  if ! pid_alive "$DIR/run/slurmd.pid"; then
    slurmd </dev/null >>"$DIR/log/slurmd.out" 2>&1 || die "slurmd did not start; read $DIR/log/slurmd.log"
    log "slurmd started"
  fi
  # a node left down or drained by an earlier unclean stop is put back to work
  local t0=$SECONDS s
  until node_ready "$host"; do
    s=$(node_state "$host")
    case "$s" in
      down*|drain*|fail*) scontrol update nodename="$host" state=resume >/dev/null 2>&1 || true ;;
    esac
    if (( SECONDS - t0 >= WAIT_S )); then
      log "timed out after ${WAIT_S}s waiting for node $host to be idle (state: ${s:-none});" \
        "read $DIR/log/slurmd.log and $DIR/log/slurmctld.log"
      tail -n 20 "$DIR/log/slurmd.log" >&2 || true
      exit 1
    fi
    sleep 0.5
  done
  wait_for "$WAIT_S" "sacct to answer" "$DIR/log/slurmdbd.log" sacct_ok
}

stop_slurm() {
  local jobs
  # jobs left running would outlive slurmd (their slurmstepd stays): end them first
  if pid_alive "$DIR/run/slurmctld.pid" && jobs=$(squeue -h -o %i 2>/dev/null) && [ -n "$jobs" ]; then
    log "cancelling jobs still queued or running: ${jobs//$'\n'/ }"
    # shellcheck disable=SC2086
    scancel --full $jobs 2>/dev/null || true
    local i
    for ((i = 0; i < 40; i++)); do
      [ -z "$(squeue -h -o %i 2>/dev/null)" ] && break
      sleep 0.5
    done
  fi
  stop_pidfile slurmd "$DIR/run/slurmd.pid"
  stop_pidfile slurmctld "$DIR/run/slurmctld.pid"
}

# --- commands ----------------------------------------------------------------------------------------------------

prepare_dirs() {
  install -d -m 755 "$DIR" "$DIR/run" "$DIR/log"
  install -d -m 700 "$DIR/ctld" "$DIR/d"
  install -d -m 755 "$ETC"
}

cmd_start() {
  local t0=$SECONDS host
  if [ "$(id -u)" -ne 0 ]; then
    local missing; missing=$(missing_packages | tr '\n' ' ')
    if [ -n "$missing" ]; then
      log "SLURM packages missing; as root run:  apt-get install -y --no-install-recommends ${missing% }"
      exit 2
    fi
    if sinfo -h >/dev/null 2>&1 && sacct_ok >/dev/null 2>&1; then
      log "cluster already running"; exit 0
    fi
    log "the local cluster is not running and starting it needs root:  sudo bash $0 start"
    exit 2
  fi
  prepare_dirs
  install_packages
  host=$(hostname -s)
  start_munge
  # slurm.conf first: every client command, sacctmgr included, needs it
  local conf_changed=0
  write_slurm_conf "$host" && conf_changed=1
  start_mariadb
  start_slurmdbd
  start_slurm "$host" "$conf_changed"
  log "cluster $CLUSTER up on $host ($(sinfo -h -N -o '%c CPUs, %m MB, %T' | head -n 1))" \
    "in $((SECONDS - t0)) s; state in $DIR"
}

cmd_stop() {
  [ "$(id -u)" -eq 0 ] || die "stop needs root"
  stop_slurm
  stop_slurmdbd
  stop_mariadb
  stop_munge
  log "stopped"
}

daemon_line() {  # daemon_line NAME PIDFILE
  if [ ! -x "$(dirname "$2")" ] || { [ -e "$2" ] && [ ! -r "$2" ]; }; then
    printf '%-10s unknown (%s is readable by root only)\n' "$1" "$2"
  elif pid_alive "$2"; then printf '%-10s running (pid %s)\n' "$1" "$(cat "$2")"
  else printf '%-10s not running\n' "$1"; fi
}

cmd_status() {
  daemon_line munged "$DIR/munge/munged.pid"
  daemon_line mariadb "$DIR/mysqld/mariadbd.pid"
  daemon_line slurmdbd "$DIR/run/slurmdbd.pid"
  daemon_line slurmctld "$DIR/run/slurmctld.pid"
  daemon_line slurmd "$DIR/run/slurmd.pid"
  if command -v sinfo >/dev/null && sinfo 2>/dev/null; then
    squeue 2>/dev/null || true
  else
    echo "sinfo: no answer"
    return 1
  fi
}

case "${1:-}" in
  start) cmd_start ;;
  stop) cmd_stop ;;
  status) cmd_status ;;
  *) echo "usage: $0 start|stop|status" >&2; exit 64 ;;
esac
