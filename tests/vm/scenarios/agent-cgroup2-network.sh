#!/bin/sh
# Agent scenario, busybox tier (pure cgroup v2): pods with their own network through Debian's
# CNI plugins (bridge, host-local, loopback: copied into the payload with their libraries by
# run-all.sh; the VM has no iptables, so the network has no masquerade and no portmap). Runs
# after agent-cgroup2-api.sh in the same VM, with its own agent (service cgroup, cgroup root,
# manifests, port 10253, CNI dirs). The VM is the node: its own network is the test's to change.
# Checks:
# - two pods serving on port 80 each get an IP of the range on their eth0, and the node reaches
#   both; the status names the IP;
# - /stats/summary has the pod's eth0 counters;
# - removing the pods tears their network down: no veth, no address reservation, no cached
#   result left.
. ./lib.sh
[ -x ./bin/minikubelet ] || { skip agent_cgroup2_network "no minikubelet binary in the payload"; exit 0; }
[ -x ./cni/bridge ] || { skip agent_cgroup2_network "no CNI plugins in the payload (run-all.sh copies Debian's)"; exit 0; }
SVC=$CG/mkl-network.service; MAN=/tmp/net-manifests; LOG=/tmp/agent-net.log; MKL_PORT=10253
CONF=/tmp/net-conf; CACHE=/tmp/net-cni; IPAM=/tmp/net-ipam
dump_log() { note "agent log (last 40 lines):"; tail -40 $LOG | sed 's/^/  |   /'; }
pod_field() { http /pods | jq -r --arg n "$1" ".items[] | select(.metadata.name | startswith(\$n)) | $2" 2>/dev/null; }
grep -qw memory $CG/cgroup.subtree_control || echo "+cpu +memory +pids" > $CG/cgroup.subtree_control
mkdir -p $MAN $SVC /tmp/net-root /tmp/net-logs $CONF
cat > $CONF/10-vm.conflist <<CONF
{"cniVersion": "1.0.0", "name": "vmnet", "plugins": [
  {"type": "bridge", "bridge": "mkl0", "isGateway": true, "ipMasq": false, "hairpinMode": true,
   "ipam": {"type": "host-local", "ranges": [[{"subnet": "10.88.0.0/24"}]], "dataDir": "$IPAM"}}]}
CONF
check a2n_images_imported 'import_images /tmp/net-root busybox-test'
sh -c "echo \$\$ > $SVC/cgroup.procs && exec ./bin/minikubelet --pod-manifest-path=$MAN \
  --root-dir=/tmp/net-root --pod-logs-dir=/tmp/net-logs --cgroup-root=mkl-net --port=$MKL_PORT \
  --cni-conf-dir=$CONF --cni-bin-dir=$PAYLOAD/cni --cni-cache-dir=$CACHE" >>$LOG 2>&1 &
AGENT=$!
check a2n_healthz 'wait_for 60 healthz_ok'
healthz_ok || { dump_log; finish; }
for p in web-a web-b; do
  cat > $MAN/$p.yaml <<POD
apiVersion: v1
kind: Pod
metadata: {name: $p}
spec:
  terminationGracePeriodSeconds: 1
  containers:
  - name: web
    image: localhost/busybox:test
    command: [sh, -c, "mkdir -p /tmp/www && echo hello from $p > /tmp/www/index.html && exec httpd -f -p 80 -h /tmp/www"]
POD
done
running() { [ "$(pod_field "$1" '.status.containerStatuses[0].state | keys[0]')" = running ]; }
check a2n_pods_running 'wait_for 90 "running web-a && running web-b"'
ip_a=$(pod_field web-a .status.podIP); ip_b=$(pod_field web-b .status.podIP)
note "pod IPs: web-a $ip_a, web-b $ip_b; host IP $(pod_field web-a .status.hostIP)"
check a2n_own_ips 'case "$ip_a $ip_b" in "10.88.0."*" 10.88.0."*) [ "$ip_a" != "$ip_b" ] ;; *) false ;; esac'
get() { printf 'GET / HTTP/1.0\r\n\r\n' | ./bin/busybox nc -w 5 "$1" 80 2>/dev/null | tail -1; }
check a2n_node_reaches_pods '[ "$(get $ip_a)" = "hello from web-a" ] && [ "$(get $ip_b)" = "hello from web-b" ]'
check a2n_stats_network '[ "$(http /stats/summary | jq -r ".pods[] | select(.podRef.name | startswith(\"web-a\")) | .network.name")" = eth0 ]'
rm $MAN/web-a.yaml $MAN/web-b.yaml
gone() { [ -z "$(ls $CACHE/results 2>/dev/null)" ] && [ -z "$(pod_field web- .metadata.name)" ]; }
check a2n_torn_down 'wait_for 60 gone'
check a2n_no_veth_left '! ./bin/busybox ip -o link show | grep -q veth'
check a2n_no_ip_reserved '! ls $IPAM/vmnet 2>/dev/null | grep -q "^10\."'
kill $AGENT 2>/dev/null
[ "$fail" = 0 ] || dump_log
finish
