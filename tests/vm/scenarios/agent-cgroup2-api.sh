#!/bin/sh
# Agent scenario, busybox tier (pure cgroup v2): the kubelet API and kubectl 1.32 on cgroup v2.
# Runs after agent-cgroup2-eviction.sh in the same VM, with its own agents. Checks:
# - TLS: the agent serves with the host-made certificates (run-all.sh, pki/); kubectl connects
#   with a client certificate (O=system:masters), with a --token-auth-file token, and with the
#   agent's own <root-dir>/kubeconfig (https, admin token); no credentials: refused;
# - logs: kubectl logs --tail, kubectl logs -f for a bounded time, /containerLogs?tailLines;
# - probes: an exec readiness probe turns the container Ready and back; a failing exec liveness
#   probe restarts it (the files the probes test are made and removed with kubectl exec: they live
#   in the container's own root, its image's overlay);
# - exec (kubectl exec: output, exit code, stdin, the container's v2 cgroup) and /run;
#   attach (kubectl attach -i); port-forward (kubectl port-forward, a request through it);
# - /stats/summary and /metrics/resource: an idle container's cpu and memory equal its cgroup's
#   cpu.stat usage_usec and memory.current (minus inactive_file), bracketed by reads around them;
# - disk eviction: an agent whose root and log dirs are on a 32 MiB tmpfs, nodefs.available<40%:
#   a pod filling its log is evicted with the kubelet's ephemeral-storage message, another stays.
# kubectl runs over TLS only, so every kubectl check here is also a TLS check.
. ./lib.sh
[ -x ./bin/minikubelet ] || { skip agent_cgroup2_api "no minikubelet binary in the payload"; exit 0; }
# no kubectl or PKI in the payload is a failure, not a skip: run-all.sh must provide them
check a2api_payload '[ -x ./bin/kubectl ] && [ -f pki/ca.crt ] && [ -f pki/tokens.csv ]'
[ "$fail" = 0 ] || finish
SVC=$CG/mkl-api.service; KP=$SVC/mkl-api/kubepods
MAN=/tmp/api-manifests; LOG=/tmp/agent-api.log; PORT=10253; PKI=$PAYLOAD/pki
HOME=/tmp/kube-home; export HOME; mkdir -p $HOME $MAN $SVC
dump_log() { note "agent log (last 40 lines):"; tail -40 $LOG | sed 's/^/  |   /'; }
grep -qw memory $CG/cgroup.subtree_control || echo "+cpu +memory +pids" > $CG/cgroup.subtree_control
token=$(cut -d, -f1 $PKI/tokens.csv)
# contexts: cert (client certificate, the default), tok (token file), anon (no credentials of its own)
cat > /tmp/api-kubeconfig <<EOF
apiVersion: v1
kind: Config
clusters:
- name: vm
  cluster: {server: "https://127.0.0.1:$PORT", certificate-authority: $PKI/ca.crt}
users:
- name: cert
  user: {client-certificate: $PKI/client.crt, client-key: $PKI/client.key}
- name: tok
  user: {token: "$token"}
- name: anon
  user: {}
contexts:
- name: cert
  context: {cluster: vm, user: cert, namespace: default}
- name: tok
  context: {cluster: vm, user: tok, namespace: default}
- name: anon
  context: {cluster: vm, user: anon, namespace: default}
current-context: cert
EOF
k() { kubectl --kubeconfig=/tmp/api-kubeconfig --request-timeout=20s "$@"; }

cat > $MAN/api.yaml <<'EOF'
apiVersion: v1
kind: Pod
metadata: {name: vm-api, namespace: default}
spec:
  terminationGracePeriodSeconds: 1
  containers:
  - name: logger
    image: localhost/busybox:test
    command: ["/bin/sh", "-c", "i=0; while :; do i=$((i+1)); echo \"line $i\"; sleep 0.5; done"]
  - name: idle
    image: localhost/busybox:test
    command: ["/bin/sleep", "100000"]
    resources:
      limits: {memory: 32Mi}
  - name: web
    image: localhost/busybox:test
    command: ["/bin/sh", "-c", "mkdir -p /www && echo 'hello through the tunnel' > /www/hello.txt && exec httpd -f -p 127.0.0.1:18080 -h /www"]
EOF
cat > $MAN/probe.yaml <<'EOF'
apiVersion: v1
kind: Pod
metadata: {name: vm-probe, namespace: default}
spec:
  terminationGracePeriodSeconds: 1
  containers:
  - name: probed
    image: localhost/busybox:test
    command: ["/bin/sleep", "100000"]
    readinessProbe:
      exec: {command: ["/bin/test", "-f", "/tmp/ready"]}
      periodSeconds: 1
      failureThreshold: 1
    livenessProbe:
      exec: {command: ["/bin/sh", "-c", "! test -f /tmp/kill"]}
      periodSeconds: 1
      failureThreshold: 1
EOF
cat > $MAN/talker.yaml <<'EOF'
apiVersion: v1
kind: Pod
metadata: {name: vm-talker, namespace: default}
spec:
  restartPolicy: Never
  containers:
  - name: talk
    image: localhost/busybox:test
    stdin: true
    stdinOnce: true
    command: ["/bin/sh", "-c", "while read l; do echo \"got $l\"; done; echo bye"]
EOF

check a2api_images_imported 'import_images /tmp/api-root busybox-test'
sh -c "echo \$\$ > $SVC/cgroup.procs && exec ./bin/minikubelet --pod-manifest-path=$MAN --root-dir=/tmp/api-root \
  --pod-logs-dir=/tmp/api-logs --container-logs-dir=/tmp/api-containers --cgroup-root=mkl-api --port=$PORT \
  --tls-cert-file=$PKI/server.crt --tls-private-key-file=$PKI/server.key --client-ca-file=$PKI/ca.crt \
  --token-auth-file=$PKI/tokens.csv" >>$LOG 2>&1 &
AGENT=$!
tls_healthz() { [ "$(k get --raw /healthz 2>/dev/null)" = ok ]; }
check a2api_tls_client_cert 'wait_for 60 tls_healthz'
tls_healthz || { dump_log; kill $AGENT; finish; }
check a2api_tls_token_file '[ "$(k --context=tok get --raw /healthz 2>/dev/null)" = ok ]'
check a2api_tls_admin_kubeconfig 'grep -q "server: https://" /tmp/api-root/kubeconfig && kubectl --kubeconfig=/tmp/api-root/kubeconfig get --raw /healthz | grep -qx ok'
# a token nobody issued: 401 (kubectl cannot send no credentials at all: with an empty user it
# prompts for a username instead; tests/authn.rs covers requests without credentials)
out=$(k --context=anon --token=not-a-token-of-this-node get --raw /pods 2>&1 </dev/null); note "unknown token: $out"
check a2api_tls_unknown_token_refused 'echo "$out" | grep -q Unauthorized'

pods() { k get pods -o json 2>/dev/null; }
# pod_name PREFIX: the static pod's full name (<name>-<node>)
pod_name() { pods | jq -r --arg n "$1" '.items[] | .metadata.name | select(startswith($n + "-"))' | head -1; }
# cstatus POD-PREFIX CONTAINER JQ: a field of that container's status
cstatus() { pods | jq -r --arg n "$1" --arg c "$2" ".items[] | select(.metadata.name | startswith(\$n + \"-\"))
  | .status.containerStatuses[]? | select(.name == \$c) | $3" 2>/dev/null; }
running() { [ "$(cstatus "$1" "$2" '.state | keys[0]')" = running ]; }
api_running() { for c in logger idle web; do running vm-api $c || return 1; done; running vm-probe probed && running vm-talker talk; }
check a2api_kubectl_pods_running 'wait_for 90 api_running'
api=$(pod_name vm-api); probe=$(pod_name vm-probe); talker=$(pod_name vm-talker)
note "pods: $api $probe $talker"

# --- logs
# a few lines in the logger's log (two a second), read on the node
logger_lines() { cat /tmp/api-logs/default_"$api"_*/logger/*.log 2>/dev/null | wc -l; }
wait_for 20 '[ "$(logger_lines)" -ge 3 ]'
tail2=$(k logs "$api" -c logger --tail=2 2>&1)
note "logs --tail=2: $(echo "$tail2" | tr '\n' '|')"
consecutive() { echo "$1" | awk 'NF != 2 || $1 != "line" { bad = 1 } NR > 1 && $2 != p + 1 { bad = 1 } { p = $2 } END { exit bad || NR != '"$2"' }'; }
check a2api_kubectl_logs_tail 'consecutive "$tail2" 2'
# follows until 4 lines have come (kubectl's start takes seconds under TCG), at most 30 s
kubectl --kubeconfig=/tmp/api-kubeconfig logs -f "$api" -c logger --tail=1 > /tmp/follow.out 2>/dev/null & fpid=$!
wait_for 30 '[ "$(wc -l < /tmp/follow.out)" -ge 4 ]'
kill $fpid 2>/dev/null; wait $fpid 2>/dev/null
follow=$(head -n 4 /tmp/follow.out)   # whole lines only
note "logs -f: $(echo "$follow" | tr '\n' '|')"
check a2api_kubectl_logs_follow '[ "$(echo "$follow" | wc -l)" -ge 3 ] && consecutive "$follow" "$(echo "$follow" | wc -l)"'
raw=$(k get --raw "/containerLogs/default/$api/logger?tailLines=3" 2>&1)
check a2api_containerlogs_tail 'consecutive "$raw" 3'

# --- probes: not ready, ready once the file exists, not ready again; liveness restarts
ready() { [ "$(cstatus vm-probe probed .ready)" = "$1" ]; }
check a2api_readiness_initially_false 'ready false'
k exec "$probe" -c probed -- touch /tmp/ready
check a2api_readiness_true 'wait_for 30 "ready true"'
k exec "$probe" -c probed -- rm /tmp/ready
check a2api_readiness_false_again 'wait_for 30 "ready false"'
k exec "$probe" -c probed -- touch /tmp/kill
restarted() { [ "$(cstatus vm-probe probed .restartCount)" -ge 1 ] 2>/dev/null; }
check a2api_liveness_restarts 'wait_for 60 restarted'
# the restarted container is a new one, on a new writable layer: no /tmp/kill any more
check a2api_liveness_running_again 'wait_for 60 "running vm-probe probed"'
note "probed: restartCount $(cstatus vm-probe probed .restartCount), last: $(cstatus vm-probe probed '.lastState.terminated.reason // "-"')"

# --- exec, /run, attach
uid=$(pods | jq -r --arg n "$api" '.items[] | select(.metadata.name == $n) | .metadata.uid')
ex=$(k exec "$api" -c idle -- sh -c 'echo $((6*7)); cat /proc/self/cgroup' 2>&1)
note "exec: $(echo "$ex" | tr '\n' '|')"
check a2api_kubectl_exec_output 'echo "$ex" | grep -qx 42'
check a2api_kubectl_exec_in_container_cgroup 'echo "$ex" | grep -q "^0::/.*/pod$uid/idle\$"'
k exec "$api" -c idle -- sh -c 'exit 3' >/dev/null 2>&1; rc=$?
check a2api_kubectl_exec_exit_code '[ "$rc" = 3 ]'
check a2api_kubectl_exec_stdin '[ "$(echo hello-stdin | k exec -i "$api" -c idle -- cat 2>/dev/null)" = hello-stdin ]'
ran=$(k create --raw "/run/default/$api/idle?cmd=echo+ran+here" -f /dev/null 2>&1)
check a2api_run_endpoint '[ "$ran" = "ran here" ]'
att=$(printf 'x\ny\n' | k attach -i "$talker" -c talk 2>/dev/null)
note "attach: $(echo "$att" | tr '\n' '|')"
check a2api_kubectl_attach '[ "$(echo "$att" | tr "\n" "|")" = "got x|got y|bye|" ]'

# --- port-forward: a local port of this node to the web container's 18080
k port-forward "pod/$api" 18181:18080 > /tmp/pf.out 2>&1 &
pf=$!
check a2api_port_forward_listening 'wait_for 30 "grep -q \"Forwarding from\" /tmp/pf.out"'
got=$(mkl-standin --http-get http://127.0.0.1:18181/hello.txt 2>/dev/null)
check a2api_port_forward_request '[ "$got" = "hello through the tunnel" ]'
got2=$(mkl-standin --http-get http://127.0.0.1:18181/hello.txt 2>/dev/null)
check a2api_port_forward_second_request '[ "$got2" = "hello through the tunnel" ]'
kill $pf 2>/dev/null; wait $pf 2>/dev/null
[ "$got" = "hello through the tunnel" ] || sed 's/^/  | pf: /' /tmp/pf.out | tail -5

# --- stats: the idle container (a sleep: its counters barely move) against its cgroup files,
# each value between a read of the file before and one after the request
# Burstable (a memory limit only): kubepods/burstable/pod<uid>/idle
ic=$KP/burstable/pod$uid/idle; ip=$KP/burstable/pod$uid
check a2api_idle_cgroup '[ -d "$ic" ]'
usec() { stat_of "$1/cpu.stat" usage_usec; }
wss() { awk -v c="$(cat "$1/memory.current")" '$1=="inactive_file"{print c - $2}' "$1/memory.stat"; }
# within LO HI VALUE [SLACK]: LO - SLACK <= VALUE <= HI + SLACK (memory moves by a page or two)
within() { [ -n "$3" ] && awk -v lo="$1" -v hi="$2" -v v="$3" -v s="${4:-0}" 'BEGIN { if (lo > hi) { t = lo; lo = hi; hi = t }; exit !(v + 0 >= lo - s && v + 0 <= hi + s) }'; }
c0=$(usec $ic); m0=$(cat $ic/memory.current); w0=$(wss $ic); pm0=$(cat $ip/memory.current)
summary=$(k get --raw /stats/summary 2>/dev/null)
c1=$(usec $ic); m1=$(cat $ic/memory.current); w1=$(wss $ic); pm1=$(cat $ip/memory.current)
sc() { echo "$summary" | jq -r --arg p "$api" ".pods[] | select(.podRef.name == \$p) | $1" 2>/dev/null; }
s_cpu=$(sc '.containers[] | select(.name == "idle") | .cpu.usageCoreNanoSeconds')
s_mem=$(sc '.containers[] | select(.name == "idle") | .memory.usageBytes')
s_ws=$(sc '.containers[] | select(.name == "idle") | .memory.workingSetBytes')
s_pmem=$(sc '.memory.usageBytes')
note "idle: cgroup usage_usec $c0..$c1 memory.current $m0..$m1 ws $w0..$w1 pod $pm0..$pm1"
note "summary: cpu ${s_cpu}ns memory $s_mem ws $s_ws pod memory $s_pmem"
check a2api_summary_cpu_is_cpu_stat 'within $((c0 * 1000)) $((c1 * 1000)) "$s_cpu"'
check a2api_summary_memory_is_memory_current 'within $m0 $m1 "$s_mem" 8192'
check a2api_summary_working_set 'within $w0 $w1 "$s_ws" 8192'
# The pod's memory also moves with its web container (the port-forward requests just served):
# read again, up to three times, until a summary falls between two reads of memory.current
# (once ~110 KiB above both, which a single read cannot tell from a wrong value).
pod_mem_ok() {
  within $pm0 $pm1 "$s_pmem" 65536 && return 0
  sleep 1
  pm0=$(cat $ip/memory.current)
  s_pmem=$(k get --raw /stats/summary 2>/dev/null | jq -r --arg p "$api" '.pods[] | select(.podRef.name == $p) | .memory.usageBytes' 2>/dev/null)
  pm1=$(cat $ip/memory.current)
  note "pod memory again: $pm0..$pm1 summary $s_pmem"
  return 1
}
check a2api_summary_pod_memory 'pod_mem_ok || pod_mem_ok || pod_mem_ok'
c0=$(usec $ic); w0=$(wss $ic)
metrics=$(k get --raw /metrics/resource 2>/dev/null)
c1=$(usec $ic); w1=$(wss $ic)
# metric NAME: the idle container's sample value
metric() { echo "$metrics" | grep "^$1{" | grep 'container="idle"' | grep "pod=\"$api\"" | awk '{print $2}' | head -1; }
m_cpu=$(metric container_cpu_usage_seconds_total); m_ws=$(metric container_memory_working_set_bytes)
note "metrics: cpu ${m_cpu}s ws $m_ws (cgroup usage_usec $c0..$c1 ws $w0..$w1)"
# seconds with the kubelet's float formatting: 1 us of slack for the rounding
check a2api_metrics_cpu_is_cpu_stat 'within $c0 $c1 "$(awk -v s="$m_cpu" "BEGIN { printf \"%.0f\", s * 1000000 }")" 1'
check a2api_metrics_working_set 'within $w0 $w1 "$m_ws" 8192'
kill $AGENT 2>/dev/null; wait $AGENT 2>/dev/null
[ "$fail" = 0 ] || dump_log

# --- disk eviction on v2: nodefs is a 32 MiB tmpfs holding the root and log dirs
D=/tmp/disk; DSVC=$CG/mkl-disk.service; DLOG=/tmp/agent-disk.log; DMAN=/tmp/disk-manifests
mkdir -p $D $DSVC $DMAN
mount -t tmpfs -o size=32m tmpfs $D
# the image store is on that disk too (~4 MiB of the 32: nodefs is the imagefs here)
check a2d_images_imported 'import_images $D/root busybox-test'
cat > $DMAN/steady.yaml <<'EOF'
apiVersion: v1
kind: Pod
metadata: {name: disk-steady}
spec:
  containers:
  - name: main
    image: localhost/busybox:test
    command: ["/bin/sleep", "100000"]
EOF
cat > $DMAN/chatty.yaml <<'EOF'
apiVersion: v1
kind: Pod
metadata: {name: disk-chatty}
spec:
  containers:
  - name: talk
    image: localhost/busybox:test
    command: ["/bin/sh", "-c", "sleep 2; yes 'a line of log output that fills the disk quickly' | head -c 40000000; sleep 100000"]
EOF
sh -c "echo \$\$ > $DSVC/cgroup.procs && exec ./bin/minikubelet --pod-manifest-path=$DMAN --root-dir=$D/root \
  --pod-logs-dir=$D/pods --container-logs-dir=$D/containers --cgroup-root=mkl-disk --port=10254 \
  --eviction-hard=nodefs.available\<40% --eviction-monitoring-period=2s --eviction-pressure-transition-period=5s \
  --container-log-max-size=100Mi" >>$DLOG 2>&1 &
DAGENT=$!
MKL_PORT=10254; MKL_KUBECONFIG=$D/root/kubeconfig
check a2d_healthz 'wait_for 60 healthz_ok'
dfield() { http /pods | jq -r --arg n "$1" ".items[] | select(.metadata.name | startswith(\$n)) | $2" 2>/dev/null; }
# d_evicted: as evicted() in agent-cgroup2-eviction.sh, the message from the same read
d_evicted() {
  _s=$(dfield disk-chatty '.status | [.phase, .reason, .message] | join("|")')
  case $_s in "Failed|Evicted|"*) msg=${_s#Failed|Evicted|} ;; *) return 1 ;; esac
}
msg=
check a2d_chatty_evicted 'wait_for 90 d_evicted'
note "disk: $(df -k $D | tail -1); message: $msg"
check a2d_kubelet_message 'case "$msg" in "The node was low on resource: ephemeral-storage. Threshold quantity: "*"Container talk was using "*) true ;; *) false ;; esac'
check a2d_steady_running '[ "$(dfield disk-steady .status.phase)" = Running ]'
sig=$(http /debug/eviction | jq -r '[.decisions[] | select(.action == "evicted")][0].signal' 2>/dev/null)
check a2d_signal_nodefs '[ "$sig" = nodefs.available ]'
[ "$fail" = 0 ] || { note "disk agent log:"; tail -30 $DLOG | sed 's/^/  |   /'; }
kill $DAGENT 2>/dev/null; wait $DAGENT 2>/dev/null
finish
