#!/usr/bin/env bash
# A one-node Slurm (Debian's 22.05) on loopback for the Slurm runner's suite (test/slurm/), plus an sshd on
# 127.0.0.1:${LIFTOFF_TEST_SSHD_PORT:-2222} for its SSH transport. No systemd here: munged, slurmctld, slurmd and
# sshd are started directly, each only when it is not running already. Config in /etc/slurm (the tools' default
# path, so no SLURM_CONF is needed): proctrack/linuxproc and task/none (no cgroups in this container), 4 CPUs
# declared over the 2 real cores (config_overrides) with a small DefMemPerCPU so that several test jobs run at once
# (CR_Core_Memory without DefMemPerCPU serialized them), two file-backed fake GPUs (count-only gres fails
# registration: "count reported lower than configured"), KillWait=2 and MinJobAge=5 so cancels and purges are quick.
set -euo pipefail
state=/var/lib/liftoff-slurm
ssh_port="${LIFTOFF_TEST_SSHD_PORT:-2222}"

need=()
for bin in /usr/sbin/slurmctld /usr/sbin/slurmd /usr/bin/sbatch /usr/sbin/munged /usr/sbin/sshd; do
  [ -x "$bin" ] || need=(slurmctld slurmd slurm-client munge openssh-server openssh-client)
done
if [ "${#need[@]}" -gt 0 ]; then
  apt-get -o DPkg::Lock::Timeout=600 update -qq
  DEBIAN_FRONTEND=noninteractive apt-get -o DPkg::Lock::Timeout=600 install -y -qq --no-install-recommends "${need[@]}"
fi

running() { pgrep -x "$1" >/dev/null 2>&1; }

# munge: its key comes with the package; the socket dir must exist before munged starts.
mkdir -p /run/munge && chown munge:munge /run/munge && chmod 0755 /run/munge
if [ ! -s /etc/munge/munge.key ]; then
  dd if=/dev/urandom of=/etc/munge/munge.key bs=1024 count=1 status=none
  chown munge:munge /etc/munge/munge.key && chmod 0400 /etc/munge/munge.key
fi
running munged || runuser -u munge -- /usr/sbin/munged

mkdir -p "$state/ctld" "$state/d" "$state/log" /etc/slurm
for g in 0 1; do [ -e "$state/gpu$g" ] || : >"$state/gpu$g"; done
conf=$(
  cat <<EOF
ClusterName=liftoff
SlurmctldHost=localhost(127.0.0.1)
SlurmctldPort=16817
SlurmdPort=16818
SlurmUser=root
AuthType=auth/munge
StateSaveLocation=$state/ctld
SlurmdSpoolDir=$state/d
SlurmctldPidFile=$state/slurmctld.pid
SlurmdPidFile=$state/slurmd.pid
SlurmctldLogFile=$state/log/slurmctld.log
SlurmdLogFile=$state/log/slurmd.log
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
MpiDefault=none
SchedulerType=sched/backfill
SelectType=select/cons_tres
SelectTypeParameters=CR_Core_Memory
DefMemPerCPU=64
SlurmdParameters=config_overrides
GresTypes=gpu
KillWait=2
MinJobAge=5
ReturnToService=2
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
NodeName=localhost NodeAddr=127.0.0.1 CPUs=4 RealMemory=2048 Gres=gpu:2 State=UNKNOWN
PartitionName=debug Nodes=localhost Default=YES MaxTime=INFINITE State=UP
EOF
)
gres="NodeName=localhost Name=gpu File=$state/gpu[0-1]"
changed=0
if [ "$(cat /etc/slurm/slurm.conf 2>/dev/null)" != "$conf" ]; then
  printf '%s\n' "$conf" >/etc/slurm/slurm.conf
  changed=1
fi
if [ "$(cat /etc/slurm/gres.conf 2>/dev/null)" != "$gres" ]; then
  printf '%s\n' "$gres" >/etc/slurm/gres.conf
  changed=1
fi
if [ "$changed" = 1 ]; then
  # A changed config needs fresh daemons (scontrol reconfigure does not re-read node definitions).
  pkill_pidfile() { [ -s "$1" ] && kill "$(cat "$1")" 2>/dev/null || true; }
  pkill_pidfile "$state/slurmd.pid"
  pkill_pidfile "$state/slurmctld.pid"
  for _ in $(seq 50); do running slurmctld || running slurmd || break; sleep 0.1; done
fi
running slurmctld || /usr/sbin/slurmctld
running slurmd || /usr/sbin/slurmd -N localhost

ready=
for _ in $(seq 150); do
  node_state=$(sinfo -h -N -n localhost -o '%T' 2>/dev/null || true)
  case "$node_state" in
    idle | mixed | allocated) ready=1 && break ;;
    down* | drain* | unknown*) scontrol update nodename=localhost state=resume >/dev/null 2>&1 || true ;;
  esac
  sleep 0.2
done
if [ -z "$ready" ]; then
  echo "slurm: node localhost did not become idle (state: ${node_state:-none}); see $state/log/" >&2
  exit 1
fi

# sshd on loopback only, for the SSH transport test. Tests log in with a key of their own, written to
# $state/ssh/<user> (root-owned, so sshd's StrictModes accept it) rather than into a user's home.
# The login user is liftoff-slurm, an ordinary user with a shell (liftoff-tester of base.sh has none).
mkdir -p /run/sshd "$state/ssh" && chmod 0755 /run/sshd "$state/ssh"
id -u liftoff-slurm >/dev/null 2>&1 || useradd --create-home --shell /bin/bash liftoff-slurm
[ -s /etc/ssh/ssh_host_ed25519_key ] || ssh-keygen -A >/dev/null
sshd_args=(-p "$ssh_port" -o ListenAddress=127.0.0.1 -o PermitRootLogin=no -o PasswordAuthentication=no
  -o "AuthorizedKeysFile=$state/ssh/%u" -o PidFile=/run/sshd-liftoff.pid)
if ! pgrep -f -- "/usr/sbin/sshd ${sshd_args[*]}" >/dev/null 2>&1; then
  [ -s /run/sshd-liftoff.pid ] && kill "$(cat /run/sshd-liftoff.pid)" 2>/dev/null && sleep 0.3 || true
  /usr/sbin/sshd "${sshd_args[@]}"
fi

echo "slurm: $(sinfo -V) node localhost ${node_state} (CPUs=4, gpu:2) on 127.0.0.1:16817; sshd on 127.0.0.1:$ssh_port"
