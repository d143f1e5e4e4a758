# Guest-side helpers, sourced by every VM test script (POSIX sh: busybox ash in the initramfs,
# dash in the Debian rootfs). The payload dir is the current directory when a test starts.
# Output protocol, counted by run-all.sh on the serial console: one line per check,
# "PASS <name>", "FAIL <name>" or "SKIP <name>: <reason>".
PAYLOAD=$(pwd)
PATH=$PAYLOAD/bin:$PATH:/bin:/sbin:/usr/bin:/usr/sbin; export PATH
CG=/sys/fs/cgroup
fail=0

# check NAME SHELL-EXPRESSION: evaluates it, prints PASS/FAIL NAME (and how long it took, when
# 10 s or more: where a boot's time goes)
check() {
  _check_t0=$(date +%s)
  if eval "$2"; then echo "PASS $1"; else echo "FAIL $1"; fail=1; fi
  _check_dt=$(( $(date +%s) - _check_t0 )); [ "$_check_dt" -lt 10 ] || note "$1 took $_check_dt s"
}
# skip NAME REASON
skip() { echo "SKIP $1: $2"; }
# note TEXT: context for a human reading the log (not counted)
note() { echo "  | $*"; }
# wait_for SECONDS SHELL-EXPRESSION: polls every 0.2 s until true; status 1 once SECONDS of wall
# time have passed (wall time, not a count: one evaluation can take a second under TCG)
wait_for() {
  _end=$(( $(date +%s) + $1 ))
  while :; do
    eval "$2" && return 0
    [ "$(date +%s)" -lt "$_end" ] || return 1
    sleep 0.2
  done
}
# agent_token PORT: the admin token of the agent on PORT (every request needs it, loopback too):
# the token: line of the newest <root-dir>/kubeconfig whose server is on PORT ($MKL_KUBECONFIG,
# the systemd and demo root dirs, the scenarios' /tmp/*-root dirs); empty if none (a pod's port)
agent_token() {
  for _kc in $(ls -t ${MKL_KUBECONFIG:-} /var/lib/minikubelet/kubeconfig /var/lib/minikubelet-demo/kubeconfig /tmp/*/kubeconfig 2>/dev/null); do
    if grep -q "server: http://127.0.0.1:$1/" "$_kc" 2>/dev/null; then sed -n 's/^ *token: //p' "$_kc"; return; fi
  done
}
# http PATH: GET http://127.0.0.1:${MKL_PORT:-10250}PATH with the agent's token (mkl-standin
# --http-get: busybox-static wget segfaults)
http() {
  _port=${MKL_PORT:-10250}
  MKL_TOKEN=$(agent_token "$_port") mkl-standin --http-get "http://127.0.0.1:$_port$1" 2>/dev/null
}
# healthz_ok: the agent answers /healthz with "ok"
healthz_ok() { [ "$(http /healthz)" = ok ]; }
# import_images ROOT-DIR ARCHIVE...: imports the payload's image archives (images/ARCHIVE.tar,
# built by run-all.sh: busybox-test = localhost/busybox:test, busybox-1.36 =
# docker.io/library/busybox:1.36) into the store of the agent with that --root-dir, as an offline
# node is provisioned; status 1 if one is missing or fails. The VMs have no network: a pod whose
# image is missing would try to pull it. Only what the agent's pods use (an import takes seconds
# under TCG).
import_images() {
  _root=$1; shift; _t0=$(date +%s)
  for _a in "$@"; do
    _out=$("$PAYLOAD/bin/minikubelet" image import "$PAYLOAD/images/$_a.tar" --root-dir "$_root" 2>&1) \
      || { note "$_out"; return 1; }
    echo "$_out" >> "$PAYLOAD/images/imported.txt"
  done
  note "imported $* into $_root in $(( $(date +%s) - _t0 )) s"
}
# image_digest NAME: the manifest digest import_images reported for image NAME (a pod's imageID is
# <repository>@<digest>)
image_digest() { sed -n "s|^Imported $1 (\(sha256:[0-9a-f]*\)).*|\1|p" "$PAYLOAD/images/imported.txt" 2>/dev/null | head -1; }
# image_pid1 PID LOG: the container process PID is PID 1 of a PID namespace of its own (NSpid
# ends in 1, not the node's namespace) and says so in its LOG (tests/vm/scenarios/manifests/image.yaml)
image_pid1() {
  [ "$(awk '$1 == "NSpid:" { print $NF }' /proc/$1/status 2>/dev/null)" = 1 ] \
    && [ "$(readlink /proc/$1/ns/pid)" != "$(readlink /proc/self/ns/pid)" ] && echo "$2" | grep -q " pid=1 "
}
# mounts_of_pod ROOT-DIR UID: the node's mounts under ROOT-DIR/pods/UID (the sandbox's pinned
# namespaces); empty once the pod is removed
mounts_of_pod() { awk -v p="$1/pods/$2" 'index($5, p) == 1 { print $5 }' /proc/self/mountinfo; }
# own_cgroup: this shell's cgroup v2 path
own_cgroup() { sed -n 's/^0:://p' /proc/self/cgroup; }
# procs_of CGROUP-DIR: pids in that cgroup (one level)
procs_of() { cat "$1/cgroup.procs" 2>/dev/null; }
# procs_tree CGROUP-DIR: pids in that cgroup and every cgroup below it
procs_tree() { find "$1" -name cgroup.procs -exec cat {} + 2>/dev/null; }
# container_cg ROOT NAME: the cgroup dir of container NAME below ROOT (…/pod<uid>/NAME)
container_cg() { find "$1" -type d -path "*/pod*/$2" 2>/dev/null | head -1; }
# ppid_of PID
ppid_of() { awk '$1=="PPid:"{print $2}' "/proc/$1/status" 2>/dev/null; }
# stat_of FILE KEY: value of KEY in a flat-keyed cgroup file (memory.events, cpu.stat…)
stat_of() { awk -v k="$2" '$1==k{print $2}' "$1" 2>/dev/null; }
# weight_linear SHARES / weight_runc SHARES: the two cgroup v2 cpu.weight conversions in use.
# kubelet-made cgroups (kubepods, QoS, pod): linear, 1 + ((shares - 2) * 9999) / 262142.
# container cgroups, written by the runtime: runc >= 1.3.2 / crun >= 1.23 use
# ceil(10^((l^2 + 125 l) / 612 - 7/34)), l = log2(shares); older runtimes the linear map.
# busybox awk has no log/exp, so the runc map is a table of the shares the scenarios use
# (computed with the formula above; 1024 -> 100 is the example in kubernetes issue #131216).
weight_linear() { awk -v s="$1" 'BEGIN{ if (s >= 262144) print 10000; else print int(1 + ((s - 2) * 9999) / 262142) }'; }
weight_runc() {
  case $1 in 0) echo 0 ;; 1|2) echo 1 ;; 102) echo 17 ;; 256) echo 35 ;; 1024) echo 100 ;;
    *) echo "weight_runc: no table entry for $1 shares" >&2; echo -1 ;; esac
}
# shares MILLICPU: the kubelet's MilliCPUToShares
shares() { awk -v m="$1" 'BEGIN{ s = int(m * 1024 / 1000); if (s < 2) s = 2; if (s > 262144) s = 262144; print s }'; }
# finish: exit status of the test script
finish() { exit "$fail"; }

# --- systemd tier -----------------------------------------------------------------------------
# supervisors_of CGROUP-DIR: the parents of every process in that tree: for a pods' tree, each
# container process's shim (and, harmlessly, container processes that have children)
supervisors_of() { for _q in $(procs_tree "$1"); do ppid_of "$_q"; done | sort -u; }
# strays_after_stop UNIT-CG PODS-CG BINARY: every process that must not outlive `systemctl stop`.
# After a stop only pods and their shims may remain (KillMode=process). Precisely, a survivor is
# allowed iff it lives in the pods' tree, or it is the parent of a process in the pods' tree (a shim
# supervising a container; shims stay in the unit's leaf <unit>/agent). So this prints:
#   (a) each process in the unit's cgroup tree that supervises no pod process, and
#   (b) each process anywhere running BINARY (also "BINARY (deleted)", after a reinstall) that
#       supervises no pod process (e.g. a helper that escaped into another cgroup, or the agent).
strays_after_stop() {
  _sup=" $(supervisors_of "$2" | tr '\n' ' ') "
  for _p in $(procs_tree "$1"); do
    case $_sup in *" $_p "*) ;; *) echo "$_p in-unit $(cat /proc/$_p/comm 2>/dev/null) $(sed -n 's/^0:://p' /proc/$_p/cgroup 2>/dev/null)" ;; esac
  done
  for _e in $(find /proc -mindepth 2 -maxdepth 2 -name exe -lname "$3*" 2>/dev/null); do
    _p=${_e#/proc/}; _p=${_p%/exe}
    case $_sup in *" $_p "*) ;; *) echo "$_p runs-$3 $(sed -n 's/^0:://p' /proc/$_p/cgroup 2>/dev/null)" ;; esac
  done | sort -u
}
