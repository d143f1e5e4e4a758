#!/bin/sh
# Agent scenario, systemd tier (Debian 12, systemd 252 as PID 1, pure cgroup v2): the real agent
# installed by scripts/install.sh --with-examples and run by systemd/minikubelet.service.
# - install.sh is idempotent; `systemd-analyze verify` prints nothing;
# - `systemctl start` returns once the agent is ready (Type=notify): /healthz answers at once;
#   every manifest (examples + the scenario's pods) is a pod in /pods; containers run in the
#   absolute cgroupRoot /minikubelet, outside the unit; the unit's cgroup gets no controllers;
# - the images (localhost/busybox:test for the scenario's pods, busybox:1.36 for the examples) are
#   imported into /var/lib/minikubelet before the unit starts, as on an offline node;
# - an image pod (vm-image) under the unit: PID 1 of its own PID namespace, its root the image's
#   overlay (/bin/busybox, which the node lacks; not the node's /etc/debian_version), hostname =
#   pod name, imageID = the imported digest, its cgroup in /minikubelet/kubepods;
# - `systemctl restart` keeps every pod process (same pids, restartCount unchanged);
# - `systemctl stop` leaves no stray process: only pods and their shims (strays_after_stop, lib.sh);
# - a start after the stop adopts the running pods; so does the restart of an upgrade by
#   install.sh --start (the Vagrant re-provisioning path);
# - deleting the image pod's manifest removes it cleanly: process, cgroups, no mount left of it
#   under /var/lib/minikubelet, its pod and container directories gone.
. ./lib.sh
[ -x ./bin/minikubelet ] || { skip agent_systemd "no minikubelet binary in the payload"; exit 0; }
U=minikubelet.service; BIN=/usr/local/bin/minikubelet; PODS=$CG/minikubelet
MAN=/etc/kubernetes/manifests
pods_json() { http /pods; }
ctr_state() {
  pods_json | jq -r --arg c "$1" '.items[].status.containerStatuses[]? | select(.name == $c) | .state
    | if .running then "running" elif .terminated then "terminated:" + (.terminated.reason // "")
      elif .waiting then "waiting:" + (.waiting.reason // "") else "unknown" end' 2>/dev/null | head -1
}
# restarts: "name=restartCount" of the scenario's own containers (examples may crash-loop on purpose)
restarts() {
  pods_json | jq -r '.items[].status.containerStatuses[]? | "\(.name)=\(.restartCount)"' 2>/dev/null \
    | grep -E "^($(echo $TEST_CTRS | tr ' ' '|'))=" | sort | tr '\n' ' '
}
dump_journal() { note "journal (last 30 lines):"; journalctl -q -o cat -u $U | tail -30 | sed 's/^/  |   /'; }
TEST_CTRS="guaranteed-sleep burstable-sleep besteffort-sleep image-probe"
# ctr_pids: "name=pid" for each test container (its cgroup's processes), one line
ctr_pids() { for c in $TEST_CTRS; do printf '%s=%s ' $c "$(procs_of "$(container_cg $PODS $c)" | tr '\n' ,)"; done; }

# Offline: the images every pod here runs from go into the store before anything starts the unit
check as_images_imported 'import_images /var/lib/minikubelet busybox-test busybox-1.36'
# The Vagrant lab's provisioning script itself (offline: a prebuilt binary instead of cargo),
# which installs through scripts/install.sh --with-examples --start.
check as_provision 'MKL_PREBUILT_BINARY=$PWD/bin/minikubelet ./repo/vagrant/provision.sh $PWD/repo'
check as_install './repo/scripts/install.sh --binary ./bin/minikubelet --with-examples'
check as_install_idempotent './repo/scripts/install.sh --binary ./bin/minikubelet --with-examples | grep -q "install: 0 changed"'
out=$(systemd-analyze verify /etc/systemd/system/$U 2>&1); [ -n "$out" ] && note "$out"
check as_unit_verify_silent '[ -z "$out" ]'
cp test-manifests/guaranteed.yaml test-manifests/burstable.yaml test-manifests/besteffort.yaml test-manifests/image.yaml $MAN/
n_manifests=$(ls $MAN | grep -vc '^\.')

check as_start 'systemctl start $U'
check as_ready_means_serving 'healthz_ok'
UCG=$CG$(systemctl show -P ControlGroup $U); main=$(systemctl show -P MainPID $U)
note "unit cgroup $UCG, main pid $main"
all_running() { for c in $TEST_CTRS; do [ "$(ctr_state $c)" = running ] || return 1; done; }
check as_test_pods_running 'wait_for 90 all_running'
check as_every_manifest_is_a_pod 'wait_for 30 "[ \"\$(pods_json | jq \".items | length\")\" = $n_manifests ]"'
note "pods: $(pods_json | jq -c '[.items[] | {n: .metadata.name, p: .status.phase}]')"
# The examples run on a stock Debian with nothing but what it ships (python3 included): every
# pod other than the crash loop becomes Ready; the web example answers on 8080.
ready() { pods_json | jq -e --arg p "$1" '.items[] | select(.metadata.name | startswith($p + "-"))
  | .status.conditions[]? | select(.type == "Ready") | .status == "True"' >/dev/null 2>&1; }
examples_ready() { for p in web probes-and-hooks vm-guaranteed vm-burstable vm-besteffort; do ready $p || return 1; done; }
check as_examples_ready 'wait_for 90 examples_ready'
check as_example_web_serves 'MKL_PORT=8080 http / >/dev/null'
# With an absolute cgroupRoot the agent has no reason to move into a leaf: the unit's cgroup
# never delegates controllers. It and its shims stay in the unit's cgroup (or its agent/ leaf).
in_unit() { cat $UCG/cgroup.procs $UCG/agent/cgroup.procs 2>/dev/null | grep -qx "$1"; }
check as_agent_in_unit 'in_unit "$main"'
check as_unit_cgroup_no_controllers '[ -z "$(cat $UCG/cgroup.subtree_control)" ]'
in_pods() { for c in $TEST_CTRS; do d=$(container_cg $PODS $c); [ -n "$d" ] && [ -n "$(procs_of $d)" ] || return 1; done; }
check as_containers_in_cgroup_root 'in_pods'
check as_no_pod_in_unit '[ -z "$(find $UCG -type d -name "pod*")" ]'

# --- the image pod (issue 11): what its process sees (its log) and what the node sees of it
i_name=$(pods_json | jq -r '.items[].metadata.name | select(startswith("vm-image-"))' | head -1)
i_uid=$(pods_json | jq -r --arg n "$i_name" '.items[] | select(.metadata.name == $n) | .metadata.uid')
i_cid=$(pods_json | jq -r --arg n "$i_name" '.items[] | select(.metadata.name == $n) | .status.containerStatuses[0].containerID' | sed 's|^minikubelet://||')
i_cg=$(container_cg $PODS image-probe); i_pid=$(procs_of "$i_cg" | head -1)
i_log=$(http "/containerLogs/default/$i_name/image-probe")
note "vm-image ($i_name, container $i_cid, pid $i_pid): $(echo "$i_log" | tr '\n' '|')"
check as_image_pid1 'image_pid1 "$i_pid" "$i_log"'
check as_image_root_overlay 'echo "$i_log" | grep -q " root=overlay,overlay "'
# Debian's minbase has no busybox; the image is busybox
check as_image_root_is_image '[ -n "$i_pid" ] && [ ! -e /bin/busybox ] && [ -e /proc/$i_pid/root/bin/busybox ] && echo "$i_log" | grep -qx "image-probe: sees /bin/busybox"'
check as_image_node_files_hidden '[ -n "$i_pid" ] && [ -e /etc/debian_version ] && [ ! -e /proc/$i_pid/root/etc/debian_version ] && ! echo "$i_log" | grep -qE "sees /(etc/debian_version|vmlab)"'
check as_image_hostname '[ -n "$i_name" ] && echo "$i_log" | grep -q " hostname=$i_name "'
check as_image_id '[ -n "$i_pid" ] && [ "$(pods_json | jq -r --arg n "$i_name" ".items[] | select(.metadata.name == \$n) | .status.containerStatuses[0].imageID")" = "localhost/busybox@$(image_digest localhost/busybox:test)" ]'
check as_image_cgroup '[ -n "$i_pid" ] && [ "$(sed -n "s/^0:://p" /proc/$i_pid/cgroup)" = "/minikubelet/kubepods/besteffort/pod$i_uid/image-probe" ]'
before=$(ctr_pids); r0=$(restarts); note "containers: $before; restarts: $r0"
shims=$(for c in $TEST_CTRS; do ppid_of "$(procs_of "$(container_cg $PODS $c)" | head -1)"; done | tr '\n' ' ')
check as_shims_in_unit '[ -n "$shims" ] && ( for s in $shims; do in_unit "$s" || exit 1; done )'

check as_restart 'systemctl restart $U && healthz_ok'
main2=$(systemctl show -P MainPID $U)
check as_restart_new_agent '[ "$main2" != "$main" ] && [ ! -d /proc/$main ]'
check as_restart_same_pids '[ "$(ctr_pids)" = "$before" ]'
check as_restart_still_running 'all_running'
check as_restart_no_container_restarts '[ -n "$r0" ] && [ "$(restarts)" = "$r0" ]'

check as_stop 'systemctl stop $U && [ "$(systemctl is-active $U)" = inactive ]'
check as_stop_agent_gone 'wait_for 10 "[ ! -d /proc/$main2 ]"'
# The agent's spare shim (`minikubelet-shim ... --prestarted`) exits when the agent's end of
# its pipe closes, a moment after the agent: give it that moment, no more.
wait_for 5 '[ -z "$(strays_after_stop "$UCG" "$PODS" "$BIN")" ]'
strays=$(strays_after_stop "$UCG" "$PODS" "$BIN"); [ -n "$strays" ] && note "strays: $strays"
check as_stop_no_strays '[ -z "$strays" ]'
check as_stop_pods_running '[ "$(ctr_pids)" = "$before" ]'
check as_start_again_adopts 'systemctl start $U && wait_for 30 all_running && [ "$(ctr_pids)" = "$before" ]'
# an upgrade (vagrant provision): a changed binary, install.sh --start restarts the agent
cp ./bin/minikubelet /tmp/minikubelet-v2; echo >> /tmp/minikubelet-v2
check as_upgrade_restarts './repo/scripts/install.sh --binary /tmp/minikubelet-v2 --start | grep -q restarting && healthz_ok'
check as_upgrade_keeps_pods 'wait_for 30 all_running && [ "$(ctr_pids)" = "$before" ]'
# the image pod goes: process, cgroups, sandbox mounts (pinned namespaces), its directories
i_mounts=$(mounts_of_pod /var/lib/minikubelet "$i_uid"); note "vm-image's sandbox mounts: $(echo $i_mounts)"
rm $MAN/image.yaml
i_gone() { [ -z "$(pods_json | jq -r '.items[].metadata.name | select(startswith("vm-image-"))')" ]; }
check as_image_pod_removed 'wait_for 30 i_gone && [ ! -d /proc/$i_pid ] && [ ! -d "$i_cg" ] && [ ! -d "$(dirname "$i_cg")" ]'
check as_image_no_mounts_left '[ -n "$i_mounts" ] && [ -z "$(mounts_of_pod /var/lib/minikubelet "$i_uid")" ] && [ -n "$i_cid" ] && [ ! -e /var/lib/minikubelet/pods/$i_uid ] && [ ! -e /var/lib/minikubelet/containers/$i_cid ]'
systemctl stop $U

# The README's first command on a cgroup v2 + systemd machine (the built binary instead of
# cargo): examples run under the absolute /minikubelet-demo; Ctrl-C leaves them running; --clean
# stops them and removes every demo cgroup. Its own port and root dir, beside the unit's pods.
# exec: the background subshell becomes demo.sh, which execs the agent, so $! is the agent.
check demo_images_imported 'import_images /var/lib/minikubelet-demo busybox-1.36'
demo() { MKL_BIN=$PAYLOAD/bin/minikubelet MKL_DEMO_PORT=10260 MKL_DEMO_OFFLINE=1 exec repo/scripts/demo.sh "$@"; }
demo > /tmp/demo.log 2>&1 & demo_pid=$!
n_demo=$(ls repo/manifests/*.yaml | wc -l)
demo_pods() { MKL_PORT=10260 http /pods | jq '[.items[] | select(.status.phase == "Running")] | length' 2>/dev/null; }
check demo_runs_examples 'wait_for 90 "[ \"\$(demo_pods)\" = $n_demo ]"'
[ "$(demo_pods)" = "$n_demo" ] || sed 's/^/  | /' /tmp/demo.log | tail -15
check demo_cgroup_root_absolute '[ -n "$(find $CG/minikubelet-demo/kubepods -type d -name "pod*" | head -1)" ]'
# a sleeper container's process, before and after the agent goes (not the web example: the
# unit's web pod still holds port 8080 on this node, so the demo's one crash-loops here; pods
# share the node's network until pod networking exists)
ctr_cg=$(container_cg $CG/minikubelet-demo sleeper)
ctr_pid=$(sort -n "$ctr_cg/cgroup.procs" 2>/dev/null | head -1)
note "demo agent $demo_pid; container cgroup $ctr_cg, pid $ctr_pid"
# SIGTERM, as Ctrl-C's stand-in: a non-interactive shell starts background jobs with SIGINT
# ignored. The agent leaves its pods running on either signal.
kill -TERM $demo_pid 2>/dev/null; wait $demo_pid 2>/dev/null
check demo_agent_gone '[ ! -d /proc/$demo_pid ]'
check demo_ctrl_c_keeps_pods '[ -n "$ctr_pid" ] && [ -d /proc/$ctr_pid ] && grep -qx "$ctr_pid" "$ctr_cg/cgroup.procs"'
check demo_clean '(demo --clean) 2>&1 | grep -q "demo.sh: clean"'
check demo_clean_no_cgroup '[ ! -d $CG/minikubelet-demo ]'
[ "$fail" = 0 ] || dump_journal
finish
