#!/bin/sh
# Harness self-test (busybox tier, no agent): cgroup v2 works the way the agent relies on —
# controllers, memory.max OOM kill, pids.max, cgroup.kill, cpu.max throttling, rmdir.
. ./lib.sh
d=$CG/demo
in_demo() { sh -c "echo 0 > $d/cgroup.procs; $1"; }   # run $1 inside demo
drain() { echo 1 > $d/cgroup.kill; wait_for 10 '! grep -q "populated 1" $d/cgroup.events'; }
note "controllers: $(cat $CG/cgroup.controllers)"
echo "+cpu +memory +pids +io" > $CG/cgroup.subtree_control
check demo_subtree_control 'grep -q "cpu .*memory pids" $CG/cgroup.subtree_control'
mkdir $d; echo 32M > $d/memory.max; echo 16 > $d/pids.max; echo "50000 100000" > $d/cpu.max
check demo_proc_self_cgroup '[ "$(in_demo "cat /proc/self/cgroup")" = "0::/demo" ]'
# 64 MB string in a 32 MB cgroup -> OOM kill (awk sprintf: fast even under TCG)
in_demo "exec awk 'BEGIN{s=sprintf(\"%64000000s\",\"\"); print length(s)}'"
check demo_memory_oom_kill '[ "$(stat_of $d/memory.events oom_kill)" -ge 1 ]'
in_demo 'for i in $(seq 40); do sleep 30 & done; wait' 2>/dev/null
check demo_pids_max '[ "$(stat_of $d/pids.events max)" -ge 1 ]'
drain; check demo_cgroup_kill '! grep -q "populated 1" $d/cgroup.events'
in_demo "timeout 1 sh -c 'while :; do :; done'"
check demo_cpu_throttled '[ "$(stat_of $d/cpu.stat nr_throttled)" -ge 1 ]'
drain; rmdir $d; check demo_rmdir '[ ! -d $d ]'
finish
