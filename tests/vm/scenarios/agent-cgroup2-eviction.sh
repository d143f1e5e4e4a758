#!/bin/sh
# Agent scenario, busybox tier (pure cgroup v2): the eviction manager's cgroup v2 notifications
# (src/eviction/threshold_notifier.rs). Runs after agent-cgroup2.sh in the same VM, with its own
# agent (own service cgroup, cgroup root, manifests, port 10252). Checks:
# - with kernelMemcgNotification, allocatableMemory.available is watched with a PSI trigger on
#   kubepods/memory.pressure (when the kernel has PSI on) and kubepods/memory.events;
# - kubepods is sized to 192Mi with --system-reserved, memory.available<64Mi is copied to
#   allocatableMemory.available<64Mi; a BestEffort pod allocating ~137Mi in 16 MB steps crosses
#   it; the fast poll is off (MINIKUBELET_EVICTION_FAST_POLL=off) and the monitoring period is
#   1h, so only a notification can run a cycle. A small pod then hits its own 16Mi limit: its
#   OOM moves kubepods/memory.events (hierarchical) unless a PSI stall woke the manager first;
# - the hog is Failed/Evicted with the kubelet's message, and the decision's trigger is a v2
#   notification (psi-trigger or memory.events), not the poll nor the period.
. ./lib.sh
[ -x ./bin/minikubelet ] || { skip agent_cgroup2_eviction "no minikubelet binary in the payload"; exit 0; }
SVC=$CG/mkl-eviction.service; KP=$SVC/mkl-ev/kubepods
MAN=/tmp/ev-manifests; LOG=/tmp/agent-ev.log; MKL_PORT=10252
dump_log() { note "agent log (last 40 lines):"; tail -40 $LOG | sed 's/^/  |   /'; }
pods_json() { http /pods; }
pod_field() { pods_json | jq -r --arg n "$1" ".items[] | select(.metadata.name | startswith(\$n)) | $2" 2>/dev/null; }
grep -qw memory $CG/cgroup.subtree_control || echo "+cpu +memory +pids" > $CG/cgroup.subtree_control
mkdir -p $MAN $SVC /tmp/ev-root /tmp/ev-logs
total=$(awk '/^MemTotal:/{print $2 * 1024}' /proc/meminfo)
reserved=$((total - 192 * 1024 * 1024))
note "MemTotal $total, system-reserved $reserved, PSI: $(cat /proc/pressure/memory 2>&1 | head -1)"
check a2e_images_imported 'import_images /tmp/ev-root busybox-test'
sh -c "echo \$\$ > $SVC/cgroup.procs && MINIKUBELET_EVICTION_FAST_POLL=off exec ./bin/minikubelet \
  --pod-manifest-path=$MAN --root-dir=/tmp/ev-root --pod-logs-dir=/tmp/ev-logs --cgroup-root=mkl-ev \
  --port=$MKL_PORT --system-reserved=memory=$reserved --eviction-hard=memory.available\<64Mi \
  --kernel-memcg-notification=true --eviction-monitoring-period=1h --eviction-pressure-transition-period=5s" >>$LOG 2>&1 &
AGENT=$!
check a2e_healthz 'wait_for 60 healthz_ok'
healthz_ok || { dump_log; finish; }
watched() { grep 'memory signal watched' $LOG | grep 'signal=allocatableMemory.available'; }
check a2e_notifier_v2_armed 'wait_for 10 "watched | grep -q \"mechanism=[a-z.+-]*memory.events\""'
note "$(watched | sed 's/.*memory signal watched //')"
check a2e_kubepods_192Mi '[ "$(cat $KP/memory.max 2>/dev/null)" = $((192 * 1024 * 1024)) ]'

cat > $MAN/hog.yaml <<'EOF'
apiVersion: v1
kind: Pod
metadata: {name: ev-hog}
spec:
  containers:
  - name: eat
    image: localhost/busybox:test
    command: ["/bin/sh", "-c", "exec awk 'BEGIN { for (i = 0; i < 9; i++) { a[i] = sprintf(\"%16000000s\", \"\"); system(\"sleep 0.2\") } while (1) system(\"sleep 3600\") }'"]
EOF
hog_cg() { find $KP -type d -path '*/pod*/eat' 2>/dev/null | head -1; }
ws_mib() { awk -v c="$(cat $KP/memory.current)" '$1=="inactive_file"{print int((c - $2) / 1048576)}' $KP/memory.stat; }
# the hog holds ~137Mi: past the 128Mi crossing (192Mi - 64Mi), below the 192Mi limit
check a2e_hog_allocated 'wait_for 60 "[ -n \"\$(hog_cg)\" ] && [ \$(ws_mib) -ge 130 ] || [ \"\$(pod_field ev-hog .status.phase)\" = Failed ]"'
note "kubepods working set $(ws_mib) MiB, memory.events: $(tr '\n' ' ' < $KP/memory.events)"
if [ "$(pod_field ev-hog .status.phase)" != Failed ]; then
  cat > $MAN/bumper.yaml <<'EOF'
apiVersion: v1
kind: Pod
metadata: {name: ev-bumper}
spec:
  restartPolicy: Never
  containers:
  - name: bump
    image: localhost/busybox:test
    command: ["/bin/sh", "-c", "exec awk 'BEGIN { s = sprintf(\"%32000000s\", \"\"); print length(s) }'"]
    resources:
      limits: {memory: 16Mi}
EOF
fi
# evicted: the hog is Failed/Evicted; its message is kept from the same read (once the pressure
# is gone the agent re-admits the static pod as a new instance, whose status has no message)
evicted() {
  _s=$(pod_field ev-hog '.status | [.phase, .reason, .message] | join("|")')
  case $_s in "Failed|Evicted|"*) msg=${_s#Failed|Evicted|} ;; *) return 1 ;; esac
}
msg=
check a2e_hog_evicted 'wait_for 60 evicted'
note "message: $msg"
check a2e_kubelet_message 'case "$msg" in "The node was low on resource: memory. Threshold quantity: 64Mi, available: "*"Container eat was using "*", request is 0, has larger consumption of memory. ") true ;; *) false ;; esac'
trigger=$(http /debug/eviction | jq -r '[.decisions[] | select(.action == "evicted")][0].trigger' 2>/dev/null)
note "decision trigger: $trigger; memory.events: $(tr '\n' ' ' < $KP/memory.events)"
check a2e_trigger_v2_notification 'case "$trigger" in notification:psi-trigger|notification:memory.events) true ;; *) false ;; esac'
check a2e_crossing_logged 'grep "a threshold was crossed" $LOG | grep -q "trigger=notification:"'
kill $AGENT 2>/dev/null
[ "$fail" = 0 ] || dump_log
finish
