#!/usr/bin/env bash
# A real SLURM (Debian's 22.05 packages) on this machine, for the cluster tests and for trying the sweep as a
# cluster user would:  bash scripts/slurm_local.sh start [--nodes N]|stop|status|killnode I
#
#   start   installs the packages when missing (root), then starts munged, MariaDB, slurmdbd, slurmctld and
#           slurmd for this host with all its CPUs and memory, one default partition. Waits until the node is idle
#           and sacct answers. Running it again while the cluster runs only checks it.
#   start --nodes N
#           the same with N nodes lth-node1..N instead of this host: each a slurmd in its own network, UTS and
#           mount namespace (its own hostname, address NET.(10+I) on the private bridge lth-slurm0, an /etc/hosts
#           naming every node), each with this host's CPUs and memory; every client reaches slurmctld and slurmdbd
#           at NET.1. A node that stops answering is DOWN after SlurmdTimeout (20 s) and the controller's next
#           ping. Running it again restarts a killed node's slurmd and resumes the node. Another node count (or
#           one node) restarts slurmctld and the slurmds.
#           Either way three partitions span all nodes: main (the default) and grace, whose jobs are preempted by
#           high's when they need their CPUs (PreemptType=preempt/partition_prio, PriorityTier 2 over 1;
#           PreemptMode REQUEUE: the preempted job gets SIGTERM, KillWait (10 s) later SIGKILL, and is requeued;
#           on grace the tasks get a first SIGTERM 10 s before, its GraceTime).
#   stop    cancels the jobs still queued or running, stops every daemon `start` started and removes the
#           namespaces and the bridge; state is kept, so a later `start` brings back the same cluster (job ids,
#           accounting).
#   status  prints sinfo, squeue and whether each daemon runs.
#   killnode I
#           node loss: SIGKILL of node I's slurmd and of every process in its namespace (its job steps too).
#
# Config files go to /etc/slurm, where every client command (sbatch, srun, sacct, scontrol, scancel, and submitit
# through them) finds them without any environment. Everything else (state, spool, logs, pid files, the MariaDB
# data) lives in one folder: $LTH_SLURM_DIR, default /var/lib/lth-slurm. The nodes' addresses are in
# $LTH_SLURM_NET.0/24 (default 10.210.0.0/24): no route leads out of it, so its traffic never leaves this machine.
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
# the nodes of `start --nodes N`
NODE_PREFIX=lth-node
BRIDGE=lth-slurm0
NET=${LTH_SLURM_NET:-10.210.0}
CTLD_ADDR=$NET.1
SLURMD_TIMEOUT_S=20

log() { echo "[slurm_local] $*" >&2; }
die() { log "error: $*"; exit 1; }

# --- helpers -----------------------------------------------------------------------------------------------------

pid_alive() {  # pid_alive DIR/NAME.pid: the pid in the file is a live process named NAME (not a reused pid)
  [ -s "$1" ] && [ "$(cat "/proc/$(cat "$1")/comm" 2>/dev/null)" = "$(basename "$1" .pid)" ] \
    && [ "$(awk '{print $3}' "/proc/$(cat "$1")/stat" 2>/dev/null)" != Z ]
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

write_slurm_conf() {  # write_slurm_conf HOST NODES (0: one node, this host); returns 0 when the file changed
  local host=$1 nodes=$2 node ctld_host=$1 dbd_host=localhost node_lines i
  local spool=$DIR/d pidfile=$DIR/run/slurmd.pid logfile=$DIR/log/slurmd.log
  refuse_foreign "$ETC/slurm.conf"
  node=$(node_line)
  [[ $node == "NodeName=$host "* ]] || die "slurmd -C reported '$node', expected NodeName=$host"
  if [ "$nodes" -eq 0 ]; then
    node_lines="$node State=UNKNOWN"
  else
    # every client, in a node's namespace too, reaches slurmctld and slurmdbd on the bridge
    ctld_host="$host($CTLD_ADDR)" dbd_host=$CTLD_ADDR
    spool=$DIR/d/%n pidfile=$DIR/run/%n/slurmd.pid logfile=$DIR/log/slurmd.%n.log
    node_lines="# a node that stops answering is DOWN within seconds (its jobs NODE_FAIL, requeued if they may be)
SlurmdTimeout=$SLURMD_TIMEOUT_S"
    for ((i = 1; i <= nodes; i++)); do
      node_lines+=$'\n'"NodeName=$NODE_PREFIX$i NodeHostname=$NODE_PREFIX$i NodeAddr=$(node_addr "$i")"
      node_lines+=" ${node#"NodeName=$host "} State=UNKNOWN"
    done
  fi
  write_if_changed "$ETC/slurm.conf" 644 <<EOF
$MARK
ClusterName=$CLUSTER
SlurmctldHost=$ctld_host
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
CredType=cred/munge
# A requeued job waits cred_expire + 1 s before it may run again (default 120: two minutes of PENDING/BeginTime
# after every time-limit requeue). 10 s still leaves a launch on a loaded two-core host time to use its credential.
AuthInfo=cred_expire=10
StateSaveLocation=$DIR/ctld
SlurmdSpoolDir=$spool
SlurmctldPidFile=$DIR/run/slurmctld.pid
SlurmdPidFile=$pidfile
SlurmctldLogFile=$DIR/log/slurmctld.log
SlurmdLogFile=$logfile
# no cgroups in this container: plain process tracking, no task binding
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
SelectType=select/cons_tres
SelectTypeParameters=CR_Core
JobAcctGatherType=jobacct_gather/linux
AccountingStorageType=accounting_storage/slurmdbd
AccountingStorageHost=$dbd_host
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
$node_lines
# Two partitions on the same nodes: jobs go to main unless they name high; a job of high that needs a node running
# main's jobs preempts them (REQUEUE: SIGTERM, KillWait, SIGKILL, as scontrol requeue does). GraceTime 0 on main:
# the batch script and the tasks get the SIGTERM at once, and the tasks have KillWait to save. On grace (GraceTime
# 10) only the tasks get it at once; the batch script gets it 10 s later, with the tasks' second one.
PreemptType=preempt/partition_prio
PreemptMode=REQUEUE
PartitionName=main Nodes=ALL Default=YES MaxTime=INFINITE State=UP PriorityTier=1 PreemptMode=REQUEUE GraceTime=0
PartitionName=grace Nodes=ALL MaxTime=INFINITE State=UP PriorityTier=1 PreemptMode=REQUEUE GraceTime=10
PartitionName=high Nodes=ALL MaxTime=INFINITE State=UP PriorityTier=2 PreemptMode=OFF
EOF
}

node_state() { sinfo -h -N -n "$1" -o '%T' 2>/dev/null | head -n 1; }

node_ready() {  # the node answers and can run jobs
  local s; s=$(node_state "$1")
  case "$s" in idle|mixed|allocated|completing) return 0 ;; *) return 1 ;; esac
}

sacct_ok() { sacct -n -X -S now-1minutes -o JobID; }

wait_nodes_ready() {  # wait_nodes_ready NAME...: a node left down or drained (unclean stop, killnode) is resumed
  local t0=$SECONDS s name waiting
  while :; do
    waiting=()
    for name in "$@"; do
      node_ready "$name" && continue
      waiting+=("$name")
      s=$(node_state "$name")
      case "$s" in
        down*|drain*|fail*) scontrol update nodename="$name" state=resume >/dev/null 2>&1 || true ;;
      esac
    done
    [ ${#waiting[@]} -eq 0 ] && return 0
    if (( SECONDS - t0 >= WAIT_S )); then
      s=$(node_state "${waiting[0]}")
      log "timed out after ${WAIT_S}s waiting for node ${waiting[0]} to be idle (state: ${s:-none});" \
        "read $(slurmd_log "${waiting[0]}") and $DIR/log/slurmctld.log"
      tail -n 20 "$(slurmd_log "${waiting[0]}")" >&2 || true
      exit 1
    fi
    sleep 0.5
  done
}

start_slurm() {  # start_slurm HOST NODES (0: one node, this host)
  local host=$1 nodes=$2 i
  if ! pid_alive "$DIR/run/slurmctld.pid"; then
    slurmctld </dev/null >>"$DIR/log/slurmctld.out" 2>&1 || die "slurmctld did not start; read $DIR/log/slurmctld.log"
    log "slurmctld started"
  fi
  wait_for "$WAIT_S" "slurmctld to answer (scontrol ping)" "$DIR/log/slurmctld.log" \
    bash -c 'scontrol ping | grep -q UP'
  if [ "$nodes" -eq 0 ]; then
    if ! pid_alive "$DIR/run/slurmd.pid"; then
      slurmd </dev/null >>"$DIR/log/slurmd.out" 2>&1 || die "slurmd did not start; read $DIR/log/slurmd.log"
      log "slurmd started"
    fi
    wait_nodes_ready "$host"
  else
    for ((i = 1; i <= nodes; i++)); do start_node_slurmd "$i"; done
    # shellcheck disable=SC2046
    wait_nodes_ready $(for ((i = 1; i <= nodes; i++)); do echo "$NODE_PREFIX$i"; done)
  fi
  wait_for "$WAIT_S" "sacct to answer" "$DIR/log/slurmdbd.log" sacct_ok
}

stop_slurmds() {  # this host's slurmd and every node's
  local name
  stop_pidfile slurmd "$DIR/run/slurmd.pid"
  for name in $(node_namespaces); do stop_pidfile "slurmd of $name" "$DIR/run/$name/slurmd.pid"; done
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
  stop_slurmds
  stop_pidfile slurmctld "$DIR/run/slurmctld.pid"
}

# --- the nodes of `start --nodes N`: namespaces on a private bridge ----------------------------------------------

node_addr() { echo "$NET.$((10 + $1))"; }

slurmd_log() {  # slurmd_log NAME: the log of this host's slurmd or of node NAME's
  if [ "$1" = "$(hostname -s)" ]; then echo "$DIR/log/slurmd.log"; else echo "$DIR/log/slurmd.$1.log"; fi
}

node_namespaces() { ip netns list 2>/dev/null | awk '{print $1}' | grep -E "^$NODE_PREFIX[0-9]+\$" || true; }

kill_namespace() {  # kill_namespace NAME: SIGKILL every process in the node's network namespace; prints how many
  local pids round killed=0
  for ((round = 0; round < 10; round++)); do  # a process may fork while its siblings die
    pids=$(ip netns pids "$1" 2>/dev/null || true)
    [ -z "$pids" ] && break
    # shellcheck disable=SC2086
    kill -9 $pids 2>/dev/null || true
    killed=$((killed + $(wc -w <<<"$pids")))
    sleep 0.2
  done
  echo "$killed"
}

net_setup() {  # net_setup NODES: the bridge and namespaces lth-node1..NODES; removes those beyond NODES
  local nodes=$1 name i
  for name in $(node_namespaces); do
    i=${name#"$NODE_PREFIX"}
    (( i > nodes )) || continue
    kill_namespace "$name" >/dev/null
    ip netns del "$name"
    log "node $name removed"
  done
  if [ "$nodes" -eq 0 ]; then
    if ip link show "$BRIDGE" >/dev/null 2>&1; then ip link del "$BRIDGE"; log "bridge $BRIDGE removed"; fi
    return 0
  fi
  if ! ip link show "$BRIDGE" >/dev/null 2>&1; then
    if ip -4 route show | grep -q "^$NET\.0/24 "; then
      die "$NET.0/24 is already routed on this machine; pick another with LTH_SLURM_NET=10.x.y"
    fi
    ip link add "$BRIDGE" type bridge
    ip addr add "$CTLD_ADDR/24" dev "$BRIDGE"
    ip link set "$BRIDGE" up
  fi
  # the nodes' /etc/hosts: every node's name, and this host's on the bridge (no route leads anywhere else)
  {
    echo "127.0.0.1 localhost"
    echo "$CTLD_ADDR $(hostname -s)"
    for ((i = 1; i <= nodes; i++)); do echo "$(node_addr "$i") $NODE_PREFIX$i"; done
  } | write_if_changed "$DIR/nodes/hosts" 644 || true
  for ((i = 1; i <= nodes; i++)); do
    name=$NODE_PREFIX$i
    [ -e "/run/netns/$name" ] && continue
    ip netns add "$name"
    ip link add "lth-veth$i" type veth peer name eth0 netns "$name"
    ip link set "lth-veth$i" master "$BRIDGE" up
    ip -n "$name" addr add "$(node_addr "$i")/24" dev eth0
    ip -n "$name" link set eth0 up
    ip -n "$name" link set lo up
  done
}

net_teardown() {
  local name
  for name in $(node_namespaces); do
    kill_namespace "$name" >/dev/null
    ip netns del "$name"
  done
  if ip link show "$BRIDGE" >/dev/null 2>&1; then ip link del "$BRIDGE"; log "nodes' namespaces and bridge removed"; fi
}

start_node_slurmd() {  # start_node_slurmd I
  local name=$NODE_PREFIX$1
  pid_alive "$DIR/run/$name/slurmd.pid" && return 0
  install -d -m 755 "$DIR/run/$name"
  install -d -m 700 "$DIR/d/$name"
  # `ip netns exec` would remount /sys, and slurmd finds no cgroup filesystem there: nsenter into the network
  # namespace, a UTS namespace for the node's hostname, a mount namespace for its /etc/hosts
  nsenter --net="/run/netns/$name" unshare --uts --mount sh -c \
    'hostname "$1" && mount --bind "$2" /etc/hosts && exec slurmd' sh "$name" "$DIR/nodes/hosts" \
    </dev/null >>"$DIR/log/slurmd.$name.out" 2>&1 || die "slurmd of $name did not start; read $DIR/log/slurmd.$name.log"
  log "slurmd of $name started ($(node_addr "$1"))"
}

# --- commands ----------------------------------------------------------------------------------------------------

prepare_dirs() {
  install -d -m 755 "$DIR" "$DIR/run" "$DIR/log" "$DIR/nodes"
  install -d -m 700 "$DIR/ctld" "$DIR/d"
  install -d -m 755 "$ETC"
}

cmd_start() {  # cmd_start NODES (0: one node, this host)
  local nodes=$1 t0=$SECONDS host
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
  if write_slurm_conf "$host" "$nodes"; then  # daemons still running read the old one
    log "slurm.conf changed"
    stop_slurmds
    stop_pidfile slurmctld "$DIR/run/slurmctld.pid"
  fi
  # the bridge before slurmdbd: with nodes, sacctmgr reaches slurmdbd on it
  net_setup "$nodes"
  start_mariadb
  start_slurmdbd
  start_slurm "$host" "$nodes"
  log "cluster $CLUSTER up: $(sinfo -h -N -o '%N' | sort -u | paste -sd ' ')" \
    "($(sinfo -h -N -o '%c CPUs, %m MB, %T' | head -n 1)) in $((SECONDS - t0)) s; state in $DIR"
}

cmd_stop() {
  [ "$(id -u)" -eq 0 ] || die "stop needs root"
  stop_slurm
  net_teardown
  stop_slurmdbd
  stop_mariadb
  stop_munge
  log "stopped"
}

cmd_killnode() {  # cmd_killnode I
  [ "$(id -u)" -eq 0 ] || die "killnode needs root"
  local name=$NODE_PREFIX$1
  [ -e "/run/netns/$name" ] || die "no node $name (start --nodes N makes lth-node1..N)"
  log "node $name lost: SIGKILLed $(kill_namespace "$name") processes (slurmd and every process in its namespace)"
}

daemon_line() {  # daemon_line NAME PIDFILE
  if [ ! -x "$(dirname "$2")" ] || { [ -e "$2" ] && [ ! -r "$2" ]; }; then
    printf '%-10s unknown (%s is readable by root only)\n' "$1" "$2"
  elif pid_alive "$2"; then printf '%-10s running (pid %s)\n' "$1" "$(cat "$2")"
  else printf '%-10s not running\n' "$1"; fi
}

cmd_status() {
  local name
  daemon_line munged "$DIR/munge/munged.pid"
  daemon_line mariadb "$DIR/mysqld/mariadbd.pid"
  daemon_line slurmdbd "$DIR/run/slurmdbd.pid"
  daemon_line slurmctld "$DIR/run/slurmctld.pid"
  daemon_line slurmd "$DIR/run/slurmd.pid"
  for name in $(node_namespaces); do daemon_line "slurmd ($name)" "$DIR/run/$name/slurmd.pid"; done
  if command -v sinfo >/dev/null && sinfo 2>/dev/null; then
    squeue 2>/dev/null || true
  else
    echo "sinfo: no answer"
    return 1
  fi
}

usage() { echo "usage: $0 start [--nodes N]|stop|status|killnode I" >&2; exit 64; }

case "${1:-}" in
  start)
    case "${2:-}" in
      "") cmd_start 0 ;;
      --nodes) [[ ${3:-} =~ ^[1-9][0-9]?$ ]] || usage; cmd_start "$3" ;;
      *) usage ;;
    esac ;;
  stop) cmd_stop ;;
  status) cmd_status ;;
  killnode) [[ ${2:-} =~ ^[1-9][0-9]?$ ]] || usage; cmd_killnode "$2" ;;
  *) usage ;;
esac
