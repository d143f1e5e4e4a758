#!/bin/sh
# Harness self-test (systemd tier: Debian 12, systemd 252 as PID 1, pure cgroup v2), with the
# stand-in agent (harness/standin) installed as /usr/local/bin/minikubelet by scripts/install.sh.
# It proves the unit's design without the real agent:
# - install.sh + minikubelet.service + config.yaml work; `systemd-analyze verify` is silent;
# - Type=notify start; pods in the absolute cgroupRoot /minikubelet, outside the unit; the agent and
#   its shims in the unit's leaf <unit>/agent; the unit's cgroup gets no controllers;
# - `systemctl restart` keeps the container process and its shim (same pids), the new agent adopts;
# - `systemctl stop` leaves only pods and their shims (strays_after_stop in lib.sh);
# - install.sh --start enables and starts; after a binary change it restarts, pods kept;
# - and why: with a relative cgroupRoot (pods inside the unit), systemd 252 cannot restart the
#   agent (its cgroup has controllers enabled: EBUSY, 219/CGROUP), which DelegateSubgroup= (254)
#   would fix.
. ./lib.sh
U=minikubelet.service; BIN=/usr/local/bin/minikubelet; PODS=$CG/minikubelet
check sd_pid1_systemd '[ "$(cat /proc/1/comm)" = systemd ]'
check sd_cgroup2_only '[ "$(stat -fc %T $CG)" = cgroup2fs ]'
note "$(systemctl --version | head -1)"
check sd_systemd_252 'systemctl --version | head -1 | grep -q "^systemd 252 "'

check sd_install './repo/scripts/install.sh --binary ./bin/mkl-standin --with-examples'
check sd_install_idempotent './repo/scripts/install.sh --binary ./bin/mkl-standin --with-examples | grep -q "install: 0 changed"'
out=$(systemd-analyze verify /etc/systemd/system/$U 2>&1); [ -n "$out" ] && note "$out"
check sd_unit_verify_silent '[ -z "$out" ]'

check sd_start 'systemctl start $U'
check sd_active '[ "$(systemctl is-active $U)" = active ]'
UCG=$CG$(systemctl show -P ControlGroup $U); main=$(systemctl show -P MainPID $U)
note "unit cgroup $UCG, main pid $main"
check sd_agent_in_leaf 'grep -qx "$main" $UCG/agent/cgroup.procs'
check sd_unit_cgroup_no_controllers '[ -z "$(cat $UCG/cgroup.subtree_control)" ]'
c1=$(container_cg $PODS c1); ctr=$(procs_of "$c1"); shim=$(ppid_of "$ctr")
note "container cgroup $c1, container pid $ctr, shim pid $shim"
check sd_pod_outside_unit '[ -n "$ctr" ] && case $c1 in $UCG*) false ;; *) true ;; esac'
check sd_shim_in_agent_leaf '[ -n "$shim" ] && grep -qx "$shim" $UCG/agent/cgroup.procs'

check sd_restart 'systemctl restart $U'
main2=$(systemctl show -P MainPID $U)
check sd_restart_new_agent '[ "$main2" != "$main" ] && [ -d /proc/$main2 ] && [ ! -d /proc/$main ]'
check sd_restart_same_container_pid '[ "$(procs_of "$c1")" = "$ctr" ]'
check sd_restart_same_shim '[ -d /proc/$shim ] && [ "$(ppid_of "$ctr")" = "$shim" ]'
check sd_restart_adopted 'journalctl -q -o cat _PID=$main2 | grep -q "adopted=true"'

check sd_stop 'systemctl stop $U && [ "$(systemctl is-active $U)" = inactive ]'
check sd_stop_agent_gone 'wait_for 5 "[ ! -d /proc/$main2 ]"'
strays=$(strays_after_stop "$UCG" "$PODS" "$BIN"); [ -n "$strays" ] && note "strays: $strays"
check sd_stop_no_strays '[ -z "$strays" ]'
check sd_stop_pod_running '[ "$(procs_of "$c1")" = "$ctr" ] && [ -d /proc/$shim ]'
check sd_start_again_adopts 'systemctl start $U && [ "$(procs_of "$c1")" = "$ctr" ]'
journalctl -q -o cat -u $U | grep -m1 'left-over process' | sed 's/^/  | journal: /'
# the upgrade path (vagrant provision): install.sh --start enables the unit, and restarts it when
# the binary changed; the pods keep running (an ELF with a trailing byte is a "new build")
check sd_install_start_enables './repo/scripts/install.sh --binary ./bin/mkl-standin --start >/dev/null && systemctl is-enabled --quiet $U && [ "$(systemctl is-active $U)" = active ]'
cp ./bin/mkl-standin /tmp/standin-v2; echo >> /tmp/standin-v2; main3=$(systemctl show -P MainPID $U)
check sd_reinstall_restarts './repo/scripts/install.sh --binary /tmp/standin-v2 --start | grep -q "restarting" && [ "$(systemctl show -P MainPID $U)" != "$main3" ]'
check sd_reinstall_keeps_pod '[ "$(procs_of "$c1")" = "$ctr" ] && [ -d /proc/$shim ]'

# Why the cgroup root is absolute: with pods inside the unit (relative root), the unit's cgroup
# needs controllers for its children, so systemd 252 cannot put a restarted agent back in it.
systemctl stop $U; echo 1 > $PODS/cgroup.kill; wait_for 10 '[ -z "$(procs_tree $PODS)" ]'
cp /etc/default/minikubelet /tmp/default.orig
echo 'MINIKUBELET_ARGS="--cgroup-root=."' > /etc/default/minikubelet
check sd_relative_start 'systemctl start $U && [ -n "$(procs_of $UCG/kubepods/besteffort/podstandin/c1)" ]'
note "unit cgroup.subtree_control: [$(cat $UCG/cgroup.subtree_control)]"
systemctl restart $U 2>/dev/null; rc=$?
journalctl -q -o cat -u $U | grep -E '219/CGROUP|attach to cgroup' | tail -2 | sed 's/^/  | journal: /'
check sd_relative_restart_blocked_on_252 '[ $rc != 0 ] && journalctl -q -o cat -u $U | grep -q "219/CGROUP"'
systemctl stop $U; cp /tmp/default.orig /etc/default/minikubelet
finish
