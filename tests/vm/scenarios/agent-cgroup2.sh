#!/bin/sh
# Agent scenario, busybox tier (pure cgroup v2, no systemd): the real minikubelet, started in its
# own cgroup as a service manager would, with a relative --cgroup-root. Checks:
# - /healthz; the pods of test-manifests/ appear in /pods, each in its QoS cgroup
#   (kubepods/pod<uid> for Guaranteed, kubepods/{burstable,besteffort}/pod<uid>) named after its UID;
# - cpu.max, cpu.weight, memory.max of pod and container cgroups, pids.max (podPidsLimit) of pods;
# - an OOM kill is reported as terminated/OOMKilled in /pods;
# - the pods run from their image (localhost/busybox:test, imported into the agent's store
#   before it starts: the VM is offline); the image pod (vm-image) is PID 1 of its own PID
#   namespace, its root the image's overlay (the image's /etc/passwd, none of the node's files),
#   its hostname the pod's name, its imageID the imported digest;
# - the security context and volumes (vm-secure): user and groups with fsGroup, no capabilities,
#   no_new_privs, a read-only root, a 4Mi memory emptyDir, a subPath, a downward API file;
# - a Localhost seccomp profile from <root-dir>/seccomp/ and the v2 device cgroup (an eBPF
#   filter) of a default and a privileged container (vm-confined); where the kernel has AppArmor
#   (securityfs mounted here), a Localhost AppArmor profile compiled on the host and loaded
#   through securityfs (vm-apparmor), RuntimeDefault without apparmor_parser refused
#   (vm-aa-default), and a container that names no profile unconfined;
# - deleting a manifest removes the pod's processes, cgroups and sandbox mounts;
# - killing the agent leaves the pods running (shims supervise them);
# - swap: with a real swap file on, the agent refuses to start with the kubelet's message, and
#   starts with --fail-swap-on=false.
# Expected values are the kubelet's (kubelet-behaviour.md section 3): shares = milli*1024/1000;
# kubelet-made cgroups use the linear cpu.weight map, container cgroups may use either map.
. ./lib.sh
[ -x ./bin/minikubelet ] || { skip agent_cgroup2 "no minikubelet binary in the payload"; exit 0; }
SVC=$CG/minikubelet.service; ROOT=$SVC/minikubelet; KP=$ROOT/kubepods
MAN=/etc/kubernetes/manifests; LOG=/tmp/agent.log
# what Delegate=yes does for a service: the controllers are available in the agent's cgroup
echo "+cpu +memory +pids" > $CG/cgroup.subtree_control
mkdir -p $MAN /var/lib/minikubelet /var/log/pods /etc/minikubelet $SVC
cp test-manifests/*.yaml $MAN/
printf '%s\n' 'apiVersion: kubelet.config.k8s.io/v1beta1' 'kind: KubeletConfiguration' 'podPidsLimit: 64' \
  > /etc/minikubelet/config.yaml
# a Localhost seccomp profile (the kubelet's <root-dir>/seccomp/) for vm-confined's seccomp-probe
mkdir -p /var/lib/minikubelet/seccomp/profiles
echo '{"defaultAction":"SCMP_ACT_ALLOW","syscalls":[{"names":["mkdir","mkdirat"],"action":"SCMP_ACT_ERRNO","errnoRet":13},{"names":["sync"],"action":"SCMP_ACT_KILL_PROCESS"}]}' \
  > /var/lib/minikubelet/seccomp/profiles/vm-deny.json
# AppArmor: Debian's kernel has it built in and on; securityfs is mounted as systemd mounts it.
# mkl-vm-test was compiled on the host (run-all.sh: apparmor/mkl-vm-test.bin, where the host has
# apparmor_parser); loading it is one write of the whole policy to .replace. Without any of
# that the AppArmor pods are not started and their checks are skipped.
AA_FS=/sys/kernel/security/apparmor; aa_why=
grep -q ' /sys/kernel/security securityfs ' /proc/mounts || mount -t securityfs securityfs /sys/kernel/security 2>/dev/null
if [ "$(cat /sys/module/apparmor/parameters/enabled 2>/dev/null)" != Y ] || [ ! -d $AA_FS ]; then aa_why="the kernel has no AppArmor on"
elif [ ! -s apparmor/mkl-vm-test.bin ]; then aa_why="no compiled profile in the payload (no apparmor_parser on the host)"
elif ! dd if=apparmor/mkl-vm-test.bin of=$AA_FS/.replace bs=1M 2>/dev/null; then aa_why="the kernel refused the compiled profile"
fi
[ -z "$aa_why" ] || rm -f $MAN/apparmor.yaml $MAN/apparmor-default.yaml
AGENT=
# start_agent CGROUP-DIR ARGS...: runs the agent in that cgroup (as systemd would), in the background
start_agent() {
  _cg=$1; shift; mkdir -p "$_cg"
  sh -c "echo \$\$ > $_cg/cgroup.procs && exec ./bin/minikubelet $*" >>$LOG 2>&1 &
  AGENT=$!
}
# exited: the last agent started has exited (gone, or a zombie not yet reaped by this shell)
exited() { [ ! -d /proc/$AGENT ] || grep -q '^[0-9]* (.*) Z' /proc/$AGENT/stat; }
dump_log() { note "agent log (last 30 lines):"; tail -30 $LOG | sed 's/^/  |   /'; }
pods_json() { http /pods; }
# pod_field NAME-PREFIX JQ-EXPR: a field of the pod whose name starts with NAME-PREFIX
pod_field() { pods_json | jq -r --arg n "$1" ".items[] | select(.metadata.name | startswith(\$n)) | $2" 2>/dev/null; }
# ctr_state NAME: "running" / "terminated:<reason>" / "waiting:<reason>" of container NAME
ctr_state() {
  pods_json | jq -r --arg c "$1" '.items[].status.containerStatuses[]? | select(.name == $c) | .state
    | if .running then "running" elif .terminated then "terminated:" + (.terminated.reason // "")
      elif .waiting then "waiting:" + (.waiting.reason // "") else "unknown" end' 2>/dev/null | head -1
}
val() { cat "$1" 2>/dev/null | tr -d '\n'; }
# weight_ok FILE SHARES [linear-only]: cpu.weight is the linear map of SHARES (or, for container
# cgroups, the runc/crun log-quadratic map)
weight_ok() {
  _w=$(val "$1"); [ "$_w" = "$(weight_linear "$2")" ] && return 0
  [ "${3:-}" != linear-only ] && [ "$_w" = "$(weight_runc "$2")" ]
}

check a2_images_imported 'import_images /var/lib/minikubelet busybox-test'
start_agent $SVC --config=/etc/minikubelet/config.yaml --pod-manifest-path=$MAN \
  --root-dir=/var/lib/minikubelet --pod-logs-dir=/var/log/pods --cgroup-root=minikubelet --port=10250
check a2_healthz 'wait_for 60 healthz_ok'
healthz_ok || { dump_log; finish; }
check a2_agent_in_leaf 'grep -qx "$AGENT" $SVC/agent/cgroup.procs'
check a2_own_subtree_control '( for c in cpu memory pids; do grep -qw $c $SVC/cgroup.subtree_control || exit 1; done )'
all_running() {
  for c in guaranteed-sleep burstable-sleep besteffort-sleep image-probe; do
    [ "$(ctr_state $c)" = running ] && [ -n "$(procs_of "$(container_cg $KP $c)")" ] || return 1
  done
}
check a2_pods_running 'wait_for 90 all_running'
all_running || { for c in guaranteed-sleep burstable-sleep besteffort-sleep image-probe; do note "$c: $(ctr_state $c)"; done; dump_log; }
note "pods: $(pods_json | jq -c '[.items[] | {n: .metadata.name, p: .status.phase}]')"
note "cgroups: $(cd $ROOT 2>/dev/null && find kubepods -type d | tr '\n' ' ')"

# --- Guaranteed: 250m/64Mi -> shares 256, quota 25000/100000, directly under kubepods
g_uid=$(pod_field vm-guaranteed .metadata.uid); gp=$KP/pod$g_uid; gc=$gp/guaranteed-sleep
check a2_guaranteed_placement '[ -n "$g_uid" ] && [ -d "$gc" ] && [ -n "$(procs_of $gc)" ]'
check a2_guaranteed_container_cpu_max '[ "$(val $gc/cpu.max)" = "25000 100000" ]'
check a2_guaranteed_container_memory_max '[ "$(val $gc/memory.max)" = 67108864 ]'
# NoSwap (memorySwap.swapBehavior ""): no swap for any container. Debian's kernel accounts swap
# (CONFIG_SWAP + CONFIG_MEMCG): memory.swap.max exists in every container cgroup, so a missing
# file is a failure too (no swap control at all), never a pass.
check a2_guaranteed_container_no_swap '[ -e $gc/memory.swap.max ] && [ "$(val $gc/memory.swap.max)" = 0 ]'
note "guaranteed container memory.swap.max: $([ -e $gc/memory.swap.max ] && val $gc/memory.swap.max || echo absent)"
check a2_guaranteed_container_cpu_weight 'weight_ok $gc/cpu.weight 256'
check a2_guaranteed_pod_cpu_max '[ "$(val $gp/cpu.max)" = "25000 100000" ]'
check a2_guaranteed_pod_memory_max '[ "$(val $gp/memory.max)" = 67108864 ]'
check a2_guaranteed_pod_cpu_weight 'weight_ok $gp/cpu.weight 256 linear-only'
check a2_guaranteed_pod_pids_max '[ "$(val $gp/pids.max)" = 64 ]'
note "guaranteed: pod cpu.weight=$(val $gp/cpu.weight) container cpu.weight=$(val $gc/cpu.weight)"

# --- Burstable: request 100m (shares 102), no cpu limit, memory limit 64Mi
b_uid=$(pod_field vm-burstable .metadata.uid); bp=$KP/burstable/pod$b_uid; bc=$bp/burstable-sleep
check a2_burstable_placement '[ -n "$b_uid" ] && [ -d "$bc" ] && [ -n "$(procs_of $bc)" ]'
check a2_burstable_container_cpu_max '[ "$(val $bc/cpu.max)" = "max 100000" ]'
check a2_burstable_container_memory_max '[ "$(val $bc/memory.max)" = 67108864 ]'
check a2_burstable_container_cpu_weight 'weight_ok $bc/cpu.weight 102'
check a2_burstable_pod_cpu_max '[ "$(val $bp/cpu.max)" = "max 100000" ]'
check a2_burstable_pod_memory_max '[ "$(val $bp/memory.max)" = 67108864 ]'
check a2_burstable_pod_cpu_weight 'weight_ok $bp/cpu.weight 102 linear-only'
check a2_burstable_pod_pids_max '[ "$(val $bp/pids.max)" = 64 ]'

# --- BestEffort: shares 2 -> weight 1, no limits
e_uid=$(pod_field vm-besteffort .metadata.uid); ep=$KP/besteffort/pod$e_uid; ec=$ep/besteffort-sleep
check a2_besteffort_placement '[ -n "$e_uid" ] && [ -d "$ec" ] && [ -n "$(procs_of $ec)" ]'
check a2_besteffort_container_cpu_weight '[ "$(val $ec/cpu.weight)" = 1 ]'
check a2_besteffort_container_memory_max '[ "$(val $ec/memory.max)" = max ]'
check a2_besteffort_container_no_swap '[ -e $ec/memory.swap.max ] && [ "$(val $ec/memory.swap.max)" = 0 ]'
check a2_besteffort_pod_cpu_weight '[ "$(val $ep/cpu.weight)" = 1 ]'
check a2_besteffort_pod_pids_max '[ "$(val $ep/pids.max)" = 64 ]'
check a2_qos_besteffort_cpu_weight '[ "$(val $KP/besteffort/cpu.weight)" = 1 ]'

# --- the image pod: what its process sees (its log) and what the node sees of it
i_uid=$(pod_field vm-image .metadata.uid); i_name=$(pod_field vm-image .metadata.name)
i_pid=$(procs_of "$(container_cg $KP image-probe)" | head -1)
i_log=$(http "/containerLogs/default/$i_name/image-probe")
note "vm-image ($i_name, pid $i_pid): $(echo "$i_log" | tr '\n' '|')"
check a2_image_pid1 'image_pid1 "$i_pid" "$i_log"'
check a2_image_root_overlay 'echo "$i_log" | grep -q " root=overlay,overlay "'
# the initramfs has no /etc/passwd; the image has one; the node's own files stay out of sight
check a2_image_root_is_image '[ -n "$i_pid" ] && [ ! -e /etc/passwd ] && [ -e /proc/$i_pid/root/etc/passwd ] && echo "$i_log" | grep -qx "image-probe: sees /etc/passwd"'
check a2_image_node_files_hidden '[ -n "$i_pid" ] && [ -e /etc/vmlab-modules ] && [ ! -e /proc/$i_pid/root/etc/vmlab-modules ] && ! echo "$i_log" | grep -qE "sees /(etc/vmlab-modules|payload)"'
check a2_image_hostname '[ -n "$i_name" ] && echo "$i_log" | grep -q " hostname=$i_name "'
check a2_image_id '[ -n "$i_pid" ] && [ "$(pod_field vm-image ".status.containerStatuses[0].imageID")" = "localhost/busybox@$(image_digest localhost/busybox:test)" ]'
check a2_image_cgroup '[ -n "$i_pid" ] && [ "$(sed -n "s/^0:://p" /proc/$i_pid/cgroup)" = "${KP#$CG}/besteffort/pod$i_uid/image-probe" ]'
# v2 (kernel >= 5.7): every shim cloned its container straight into its cgroup with
# clone3(CLONE_INTO_CGROUP); a shim that had to fork and write cgroup.procs says so in its log
check a2_clone3_into_cgroup 'ls /var/lib/minikubelet/containers/*/shim.log >/dev/null 2>&1 && ! grep -qs "clone3(CLONE_INTO_CGROUP) unsupported" /var/lib/minikubelet/containers/*/shim.log'

# --- the security context and volumes (vm-secure): what its process reports
s_log() { http "/containerLogs/default/$(pod_field vm-secure .metadata.name)/secure-probe"; }
check a2_secure_reported 'wait_for 60 "s_log | grep -q \"secure: done\""'
s_out=$(s_log); note "vm-secure: $(echo "$s_out" | tr '\n' '|')"
check a2_secure_user_groups 'echo "$s_out" | grep -q "secure: uid=1000 gid=1000 groups=1000,2000"'
check a2_secure_no_caps 'echo "$s_out" | grep -qx "secure: CapEff:0000000000000000" && echo "$s_out" | grep -qx "secure: CapBnd:0000000000000000"'
check a2_secure_no_new_privs 'echo "$s_out" | grep -qx "secure: NoNewPrivs:1"'
check a2_secure_readonly_root 'echo "$s_out" | grep -qx "secure: root=ro"'
check a2_secure_memory_empty_dir 'echo "$s_out" | grep -qx "secure: mem=tmpfs 4096k"'
check a2_secure_sub_path_fs_group 'echo "$s_out" | grep -qx "secure: sub=data group=2000"'
check a2_secure_downward_api 'echo "$s_out" | grep -qx "secure: labels=app=\"secure\""'

# --- a Localhost seccomp profile (vm-confined/seccomp-probe): Seccomp 2, mkdir EACCES, sync killed
c_log() { http "/containerLogs/default/$(pod_field vm-confined .metadata.name)/$1"; }
check a2_seccomp_localhost_reported 'wait_for 60 "c_log seccomp-probe | grep -q \"seccomp: done\""'
sc_out=$(c_log seccomp-probe); note "seccomp-probe: $(echo "$sc_out" | tr '\n' '|')"
check a2_seccomp_localhost_filter 'echo "$sc_out" | grep -qx "seccomp: Seccomp:2"'
check a2_seccomp_localhost_errno 'echo "$sc_out" | grep -q "seccomp: mkdir: .*Permission denied"'
check a2_seccomp_localhost_kill 'echo "$sc_out" | grep -qx "seccomp: sync=159"'

# --- the device cgroup on v2 (an eBPF filter): a node made in a default container stays closed;
# a privileged container opens it and has the node's /dev/kmsg
check a2_devices_reported 'wait_for 60 "c_log dev-default | grep -q \"dev: done\" && c_log dev-privileged | grep -q \"dev: done\""'
dd_out=$(c_log dev-default); dp_out=$(c_log dev-privileged)
note "dev-default: $(echo "$dd_out" | tr '\n' '|') dev-privileged: $(echo "$dp_out" | tr '\n' '|')"
check a2_devices_default_refused 'echo "$dd_out" | grep -qx "dev: made=refused" && echo "$dd_out" | grep -qx "dev: node=none"'
check a2_devices_privileged_open 'echo "$dp_out" | grep -qx "dev: made=open" && echo "$dp_out" | grep -qx "dev: node=open"'

# --- AppArmor: a Localhost profile, RuntimeDefault without a parser, no profile at all
if [ -z "$aa_why" ]; then
  a_log() { http "/containerLogs/default/$(pod_field vm-apparmor .metadata.name)/aa-probe"; }
  check a2_apparmor_reported 'wait_for 60 "a_log | grep -q \"aa: done\""'
  aa_out=$(a_log); note "aa-probe: $(echo "$aa_out" | tr '\n' '|')"
  check a2_apparmor_localhost_profile 'echo "$aa_out" | grep -qx "aa: current=mkl-vm-test (enforce)"'
  check a2_apparmor_localhost_enforced 'echo "$aa_out" | grep -qx "aa: denied=refused" && echo "$aa_out" | grep -qx "aa: allowed=written"'
  aa_default_msg() { pods_json | jq -r '.items[].status.containerStatuses[]? | select(.name == "aa-default") | .state.waiting.message // ""'; }
  check a2_apparmor_runtime_default_refused 'wait_for 30 "[ \"\$(ctr_state aa-default)\" = waiting:CreateContainerError ]" && aa_default_msg | grep -q "^failed to generate apparmor spec opts: the runtime default profile minikubelet-default is not loaded and there is no apparmor_parser"'
  note "aa-default: $(ctr_state aa-default): $(aa_default_msg)"
  check a2_apparmor_unset_unconfined '[ -n "$i_pid" ] && [ "$(cat /proc/$i_pid/attr/current)" = unconfined ]'
else
  skip a2_apparmor "$aa_why"
fi

# --- OOM: 64 MB under a 32Mi limit, restartPolicy Never
check a2_oom_killed_reported 'wait_for 90 "[ \"\$(ctr_state oom-eater)\" = terminated:OOMKilled ]"'
note "oom-eater: $(ctr_state oom-eater)"

# --- deleting a manifest removes the pod: processes, container and pod cgroups, /pods entry
b_pid=$(procs_of $bc); b_mounts=$(mounts_of_pod /var/lib/minikubelet $b_uid)
note "burstable's sandbox mounts: $(echo $b_mounts)"
rm $MAN/burstable.yaml
check a2_delete_pod_cgroup_removed 'wait_for 60 "[ ! -d $bp ]"'
check a2_delete_process_gone '[ -n "$b_pid" ] && [ ! -d /proc/$b_pid ]'
check a2_delete_pod_unlisted 'wait_for 10 "[ -z \"\$(pod_field vm-burstable .metadata.uid)\" ]"'
check a2_delete_no_mounts_left '[ -n "$b_mounts" ] && [ -z "$(mounts_of_pod /var/lib/minikubelet $b_uid)" ] && [ ! -d /var/lib/minikubelet/pods/$b_uid ]'

# --- the agent dies, the pods stay (their shims supervise them)
g_pid=$(procs_of $gc)
kill -9 $AGENT; wait $AGENT 2>/dev/null
sleep 2
check a2_agent_death_keeps_pods '[ "$(procs_of $gc)" = "$g_pid" ] && [ -d /proc/$g_pid ] && [ -n "$(procs_of $ec)" ]'
check a2_agent_death_keeps_shim '[ -d "/proc/$(ppid_of $g_pid)" ] && [ "$(ppid_of $g_pid)" != 1 ]'

# --- swap: a real swap file on ext4 (virtio disk from run-all.sh); an empty manifest dir
disk=$(sed -n 's/.*mkl\.disk=\([^ ]*\).*/\1/p' /proc/cmdline)
mkdir -p /mnt/swapfs /tmp/empty-manifests
if [ -b "$disk" ] && mount -t ext4 "$disk" /mnt/swapfs; then
  dd if=/dev/zero of=/mnt/swapfs/swapfile bs=1M count=32 2>/dev/null; chmod 600 /mnt/swapfs/swapfile
  mkswap /mnt/swapfs/swapfile >/dev/null && swapon /mnt/swapfs/swapfile
  check a2_swap_is_on '[ "$(wc -l < /proc/swaps)" -gt 1 ]'
  : > $LOG
  start_agent $CG/swap-refused.service --pod-manifest-path=/tmp/empty-manifests --root-dir=/tmp/swap-root \
    --cgroup-root=minikubelet --port=10251
  check a2_swap_refused_exit 'wait_for 30 exited && ! wait $AGENT'
  check a2_swap_refused_message 'grep -q "running with swap on is not supported, please disable swap or set --fail-swap-on flag to false" $LOG'
  exited || kill -9 $AGENT
  start_agent $CG/swap-allowed.service --fail-swap-on=false --pod-manifest-path=/tmp/empty-manifests \
    --root-dir=/tmp/swap-root --cgroup-root=minikubelet --port=10251
  MKL_PORT=10251
  check a2_swap_allowed_with_flag 'wait_for 60 healthz_ok'
  kill $AGENT; swapoff /mnt/swapfs/swapfile
else
  check a2_swap_disk 'false'
fi
[ "$fail" = 0 ] || dump_log
finish
