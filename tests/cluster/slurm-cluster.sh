#!/usr/bin/env bash
# A real single-node SLURM cluster on this machine, for the workflow's cluster tests.
#
#   tests/cluster/slurm-cluster.sh up     start munge, MariaDB, slurmdbd, slurmctld and slurmd
#   tests/cluster/slurm-cluster.sh down   stop them (by PID) and keep the state directory
#   tests/cluster/slurm-cluster.sh env    print the SLURM_CONF line for clients (eval it)
#
# Needs root and Debian's packages: slurmctld slurmd slurm-client slurmdbd munge mariadb-server
# (.ci/run installs them). Everything the cluster writes lives under $BLENDPHOT_SLURM_DIR
# (default /tmp/blendphot-slurm); /etc is not touched, clients find the cluster through
# SLURM_CONF. `up` is idempotent: a running cluster is left alone, stale daemons are stopped.
#
# The node is a stand-in for one four-GPU node of a real cluster: 32 CPUs, 128 GB and four
# `gpu` gres backed by empty files, whatever this machine has (SlurmdParameters=config_overrides),
# so the workflow's own resource requests (8 CPUs and 32 GB per training job) schedule unchanged
# and the tiny config's four trainings run side by side, as on such a node.
# slurmd runs configless (--conf-server), so jobs need no SLURM_CONF and /etc/slurm stays as
# it is. Accounting goes to slurmdbd, so `sacct` works and records each job's gres/gpu request.
set -euo pipefail

STATE=${BLENDPHOT_SLURM_DIR:-/tmp/blendphot-slurm}
DB_PORT=${BLENDPHOT_SLURM_DB_PORT:-13306}
CLUSTER=blendphot
HOST=$(hostname -s)
export SLURM_CONF=$STATE/etc/slurm.conf

log() { echo "slurm-cluster: $*" >&2; }

alive() { [[ -f $1 ]] && kill -0 "$(cat "$1")" 2>/dev/null; }

stop_pidfile() {
    local pidfile=$1 pid
    alive "$pidfile" || { rm -f "$pidfile"; return 0; }
    pid=$(cat "$pidfile")
    kill "$pid" 2>/dev/null || true
    for _ in $(seq 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.2; done
    kill -9 "$pid" 2>/dev/null || true
    rm -f "$pidfile"
}

wait_for() {  # wait_for SECONDS DESCRIPTION COMMAND...
    local seconds=$1 what=$2; shift 2
    for _ in $(seq $((seconds * 5))); do "$@" >/dev/null 2>&1 && return 0; sleep 0.2; done
    log "timed out waiting for $what; logs in $STATE/log"
    tail -n 20 "$STATE"/log/*.log >&2 || true
    return 1
}

node_idle() { [[ $(sinfo -h -N -o %t 2>/dev/null) == idle* ]]; }

write_configs() {
    mkdir -p "$STATE"/{etc,run,log,spool/ctld,spool/d,mysql}
    touch "$STATE"/etc/fake-gpu{0..3}
    cat >"$STATE/etc/slurm.conf" <<EOF
ClusterName=$CLUSTER
SlurmctldHost=$HOST
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
SwitchType=switch/none
MpiDefault=none
SelectType=select/cons_tres
SelectTypeParameters=CR_Core_Memory
SlurmdParameters=config_overrides
ReturnToService=2
StateSaveLocation=$STATE/spool/ctld
SlurmdSpoolDir=$STATE/spool/d
SlurmctldPidFile=$STATE/run/slurmctld.pid
SlurmdPidFile=$STATE/run/slurmd.pid
SlurmctldLogFile=$STATE/log/slurmctld.log
SlurmdLogFile=$STATE/log/slurmd.log
SchedulerParameters=sched_interval=2
SlurmctldParameters=enable_configless
MessageTimeout=30
GresTypes=gpu
AccountingStorageType=accounting_storage/slurmdbd
AccountingStorageHost=$HOST
AccountingStorageTRES=gres/gpu
AccountingStoreFlags=job_comment
JobAcctGatherType=jobacct_gather/linux
JobAcctGatherFrequency=5
JobRequeue=1
NodeName=$HOST CPUs=32 RealMemory=128000 Gres=gpu:4 State=UNKNOWN
PartitionName=main Nodes=$HOST Default=YES MaxTime=INFINITE State=UP OverSubscribe=NO
EOF
    echo "NodeName=$HOST Name=gpu File=$STATE/etc/fake-gpu[0-3]" >"$STATE/etc/gres.conf"
    cat >"$STATE/etc/slurmdbd.conf" <<EOF
AuthType=auth/munge
DbdHost=$HOST
SlurmUser=root
PidFile=$STATE/run/slurmdbd.pid
LogFile=$STATE/log/slurmdbd.log
StorageType=accounting_storage/mysql
StorageHost=127.0.0.1
StoragePort=$DB_PORT
StorageUser=slurm
StoragePass=slurm
StorageLoc=slurm_acct_db
EOF
    chmod 600 "$STATE/etc/slurmdbd.conf"
}

start_munge() {
    if munge -n </dev/null 2>/dev/null | unmunge >/dev/null 2>&1; then return 0; fi
    mkdir -p /run/munge /var/log/munge /var/lib/munge /etc/munge
    chown munge:munge /run/munge /var/log/munge /var/lib/munge
    if [[ ! -s /etc/munge/munge.key ]]; then
        dd if=/dev/urandom of=/etc/munge/munge.key bs=1024 count=1 status=none
    fi
    chown munge:munge /etc/munge/munge.key && chmod 400 /etc/munge/munge.key
    runuser -u munge -- /usr/sbin/munged
    touch "$STATE/run/munged.ours"  # started here, so `down` stops it
    wait_for 10 munged bash -c 'munge -n </dev/null | unmunge'
}

mysql_client() { mariadb --no-defaults -S "$STATE/run/mysqld.sock" -u root "$@"; }

start_mariadb() {
    if alive "$STATE/run/mysqld.pid"; then return 0; fi
    if [[ ! -d $STATE/mysql/mysql ]]; then
        mariadb-install-db --no-defaults --user=root --datadir="$STATE/mysql" \
            --auth-root-authentication-method=socket >"$STATE/log/mariadb-install.log" 2>&1
    fi
    # its own session, like the daemons: it must outlive the process group that started it
    setsid mariadbd --no-defaults --user=root --datadir="$STATE/mysql" --socket="$STATE/run/mysqld.sock" \
        --pid-file="$STATE/run/mysqld.pid" --port="$DB_PORT" --bind-address=127.0.0.1 \
        --log-error="$STATE/log/mariadb.log" --innodb-buffer-pool-size=64M >>"$STATE/log/mariadb.log" 2>&1 &
    wait_for 60 MariaDB mysql_client -e 'SELECT 1'
    mysql_client -e "CREATE USER IF NOT EXISTS 'slurm'@'127.0.0.1' IDENTIFIED BY 'slurm';
                     CREATE DATABASE IF NOT EXISTS slurm_acct_db;
                     GRANT ALL ON slurm_acct_db.* TO 'slurm'@'127.0.0.1';"
}

up() {
    [[ $(id -u) == 0 ]] || { log "must run as root"; exit 1; }
    for cmd in slurmctld slurmd slurmdbd munged mariadbd sinfo sacct; do
        command -v "$cmd" >/dev/null || [[ -x /usr/sbin/$cmd ]] || {
            log "$cmd not found; install slurmctld slurmd slurm-client slurmdbd munge mariadb-server"
            exit 1
        }
    done
    if [[ -f $SLURM_CONF ]] && alive "$STATE/run/slurmctld.pid" && alive "$STATE/run/slurmd.pid" \
        && alive "$STATE/run/slurmdbd.pid" && alive "$STATE/run/mysqld.pid" && node_idle; then
        log "already up ($STATE)"
        return 0
    fi
    down 2>/dev/null || true
    write_configs
    start_munge
    start_mariadb
    slurmdbd
    wait_for 30 slurmdbd sacctmgr -n list cluster
    sacctmgr -i add cluster "$CLUSTER" >/dev/null 2>&1 || true
    # An account for the submitting user, as sites have (the plugin looks it up).
    sacctmgr -i add account blendphot cluster="$CLUSTER" >/dev/null 2>&1 || true
    sacctmgr -i add user "$(id -un)" account=blendphot cluster="$CLUSTER" >/dev/null 2>&1 || true
    slurmctld
    wait_for 30 slurmctld scontrol ping
    # Configless, as on many real clusters: slurmd fetches slurm.conf and gres.conf from
    # slurmctld and caches them in /run/slurm/conf, where srun inside a job finds them (the
    # job-step executor of the Snakemake plugin drops SLURM_CONF from the job's environment).
    env -u SLURM_CONF slurmd --conf-server "$HOST"
    wait_for 60 "node $HOST idle" node_idle
    scontrol update nodename="$HOST" state=resume >/dev/null 2>&1 || true
    log "up: node $HOST idle, accounting in slurmdbd ($STATE)"
}

down() {
    # Jobs first, so slurmd has nothing left to clean up; then the daemons by their PID files.
    if alive "$STATE/run/slurmctld.pid"; then scancel --full -u root >/dev/null 2>&1 || true; fi
    stop_pidfile "$STATE/run/slurmd.pid"
    stop_pidfile "$STATE/run/slurmctld.pid"
    stop_pidfile "$STATE/run/slurmdbd.pid"
    stop_pidfile "$STATE/run/mysqld.pid"
    # slurmd's configless cache, if it is this cluster's
    if grep -qs "^ClusterName=$CLUSTER\$" /run/slurm/conf/slurm.conf; then rm -rf /run/slurm/conf; fi
    if [[ -f $STATE/run/munged.ours ]]; then
        stop_pidfile /run/munge/munged.pid
        rm -f "$STATE/run/munged.ours"
    fi
    log "down ($STATE kept)"
}

case ${1:-} in
    up) up ;;
    down) down ;;
    env) echo "export SLURM_CONF=$SLURM_CONF" ;;
    *) echo "usage: $0 up|down|env" >&2; exit 2 ;;
esac
