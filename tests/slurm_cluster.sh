# A single-node Slurm cluster on localhost for the tests (sourced): slurm_up DIR / slurm_down.
# Follows ../shared/guides/slurm-local-cluster.md: all state under DIR, nothing written to /etc.

slurm_up() {
  SLURM_BASE=$1
  local b=$SLURM_BASE
  mkdir -p "$b"/{etc,run,log,state,munge,munge-sock,spool}
  chmod 700 "$b/munge"; chmod 755 "$b/munge-sock" "$b" "$(dirname "$b")"  # munged wants o+x on the socket path
  mungekey --create --keyfile="$b/munge/munge.key" > /dev/null 2>&1 || return 1
  munged --key-file="$b/munge/munge.key" --socket="$b/munge-sock/munge.socket" --pid-file="$b/run/munged.pid" \
    --log-file="$b/log/munged.log" --seed-file="$b/munge/seed" || return 1
  local hw; hw=$(slurmd -C | head -1)
  local field; field() { echo "$hw" | tr ' ' '\n' | grep "^$1=" | cut -d= -f2; }
  cat > "$b/etc/slurm.conf" <<CONF
ClusterName=assaytest
SlurmctldHost=localhost
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
CredType=cred/munge
AuthInfo=socket=$b/munge-sock/munge.socket
StateSaveLocation=$b/state
SlurmdSpoolDir=$b/spool/slurmd.%n
SlurmctldPidFile=$b/run/slurmctld.pid
SlurmdPidFile=$b/run/slurmd.pid
SlurmctldLogFile=$b/log/slurmctld.log
SlurmdLogFile=$b/log/slurmd.log
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
JobCompType=jobcomp/filetxt
JobCompLoc=$b/log/jobcomp.txt
SchedulerType=sched/backfill
SchedulerParameters=batch_sched_delay=0
SelectType=select/cons_tres
SelectTypeParameters=CR_Core
MpiDefault=none
SwitchType=switch/none
MailProg=/bin/true
ReturnToService=2
MinJobAge=300
NodeName=localhost NodeAddr=127.0.0.1 CPUs=$(field CPUs) Boards=$(field Boards) SocketsPerBoard=$(field SocketsPerBoard) CoresPerSocket=$(field CoresPerSocket) ThreadsPerCore=$(field ThreadsPerCore) RealMemory=$(( $(field RealMemory) - 256 ))
PartitionName=debug Nodes=ALL Default=YES State=UP
CONF
  export SLURM_CONF="$b/etc/slurm.conf"
  slurmctld -c || return 1
  for _ in $(seq 100); do scontrol ping 2>/dev/null | grep -q UP && break; sleep 0.1; done
  slurmd || return 1
  for _ in $(seq 200); do [ "$(sinfo -h -n localhost -o %t 2>/dev/null)" = idle ] && return 0; sleep 0.1; done
  echo "slurm: node did not become idle" >&2; return 1
}

slurm_down() {
  [ -n "${SLURM_BASE:-}" ] || return 0
  scancel --partition=debug > /dev/null 2>&1
  scontrol shutdown > /dev/null 2>&1
  munged -s --socket="$SLURM_BASE/munge-sock/munge.socket" > /dev/null 2>&1
  for pid in "$SLURM_BASE"/run/*.pid; do
    [ -f "$pid" ] || continue
    for _ in $(seq 50); do kill -0 "$(cat "$pid")" 2>/dev/null || break; sleep 0.1; done
  done
  return 0
}
