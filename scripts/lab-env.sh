# shellcheck shell=bash
# The labs' variables (docs/labs/README.md): source it at the start of every lab,
#   . "$MK_SRC/scripts/lab-env.sh"
# after setting any of the inputs that differ on your machine. Inputs, with their defaults:
#   MK_SRC          the checkout                         /minikubelet (the Vagrant VM)
#   MK_ROOT         the agent's --root-dir               /var/lib/minikubelet, or
#                                                        /var/lib/minikubelet-demo if only the demo ran
#   MK_PORT         the agent's --port                   10250
#   MK_MANIFESTS    its --pod-manifest-path              /etc/kubernetes/manifests ($MK_ROOT/manifests for the demo)
#   MK_LOGS         its --pod-logs-dir                   /var/log/pods
#   MK_CONTAINER_LOGS its --container-logs-dir           /var/log/containers
#   MK_CGROUP_ROOT  its --cgroup-root (cgroupRoot)       /minikubelet (service); demo: minikubelet-demo
#                                                        on v1/hybrid, /minikubelet-demo on v2
#   MK_AGENT_PID    the agent's pid (for a relative root) the oldest process named minikubelet
# Outputs:
#   MK_LAYOUT       v1, hybrid or v2
#   MK_AGENT_PID    as given, or found
#   KC              the agent's kubeconfig ($MK_ROOT/kubeconfig, 0600; kubectl --kubeconfig "$KC")
#   TOKEN           the admin token in it; every curl sends -H "Authorization: Bearer $TOKEN"
#   API             http://127.0.0.1:$MK_PORT
#   CG_CPU, CG_MEM, CG_PIDS   the kubepods cgroup in the cpu, memory and pids hierarchies. On v2
#                   they are one directory; on v1 one per hierarchy; on hybrid too (the v2 mount
#                   at /sys/fs/cgroup/unified holds no controller and no pod):
#                     v2      /sys/fs/cgroup/minikubelet/kubepods (all three)
#                     v1      /sys/fs/cgroup/cpu,cpuacct/minikubelet/kubepods, /sys/fs/cgroup/memory/minikubelet/kubepods, ...
#                     hybrid  as v1, below the agent's own cgroup in each hierarchy with a relative
#                             root (the memory hierarchy's path often differs from cpu's)
# Functions: mk_uid NAME (a pod's UID), mk_pod NAME (its JSON from /pods), mk_wait_running NAME
# [SECONDS] (until every container runs), mk_wait_gone NAME [SECONDS].

MK_SRC=${MK_SRC:-/minikubelet}
if [ -z "${MK_ROOT:-}" ]; then
  MK_ROOT=/var/lib/minikubelet
  if [ ! -e $MK_ROOT/kubeconfig ] && [ -e /var/lib/minikubelet-demo/kubeconfig ]; then
    MK_ROOT=/var/lib/minikubelet-demo
  fi
fi
MK_PORT=${MK_PORT:-10250}
if [ -z "${MK_MANIFESTS:-}" ]; then
  case $MK_ROOT in
    */minikubelet-demo) MK_MANIFESTS=$MK_ROOT/manifests ;;
    *) MK_MANIFESTS=/etc/kubernetes/manifests ;;
  esac
fi
MK_LOGS=${MK_LOGS:-/var/log/pods}
MK_CONTAINER_LOGS=${MK_CONTAINER_LOGS:-/var/log/containers}
if [ "$(stat -fc %T /sys/fs/cgroup)" = cgroup2fs ]; then
  MK_LAYOUT=v2
elif [ -d /sys/fs/cgroup/unified ]; then
  MK_LAYOUT=hybrid
else
  MK_LAYOUT=v1
fi
if [ -z "${MK_CGROUP_ROOT:-}" ]; then
  case $MK_ROOT in
    */minikubelet-demo) [ $MK_LAYOUT = v2 ] && MK_CGROUP_ROOT=/minikubelet-demo || MK_CGROUP_ROOT=minikubelet-demo ;;
    *) MK_CGROUP_ROOT=/minikubelet ;;
  esac
fi
KC=$MK_ROOT/kubeconfig
TOKEN=$(sed -n 's/^ *token: //p' "$KC" 2>/dev/null | head -1)
API=http://127.0.0.1:$MK_PORT
MK_AGENT_PID=${MK_AGENT_PID:-$(pgrep -o -x minikubelet || true)}

# _mk_kubepods CONTROLLER: kubepods in that controller's hierarchy.
_mk_kubepods() {
  local mount own pid
  if [ $MK_LAYOUT = v2 ]; then mount=/sys/fs/cgroup; else mount=/sys/fs/cgroup/$1; fi
  case $MK_CGROUP_ROOT in
    /*) echo "$mount${MK_CGROUP_ROOT%/}/kubepods"; return ;;
  esac
  # A relative root sits beneath the agent's own cgroup (on v2 beneath the parent of its
  # `agent` leaf).
  pid=$MK_AGENT_PID
  if [ $MK_LAYOUT = v2 ]; then
    own=$(sed -n 's/^0:://p' "/proc/$pid/cgroup")
    own=${own%/agent}
  else
    own=$(awk -F: -v c="$1" '{ n = split($2, a, ","); for (i = 1; i <= n; i++) if (a[i] == c) print $3 }' "/proc/$pid/cgroup")
  fi
  echo "$mount${own%/}/$MK_CGROUP_ROOT/kubepods"
}
CG_CPU=$(_mk_kubepods cpu)
CG_MEM=$(_mk_kubepods memory)
CG_PIDS=$(_mk_kubepods pids)

# Loops compare jq's text output (`until [ "$(mk_pod x | jq -r ...)" = value ]`): jq 1.6
# (Debian 12's) exits 0 under -e when its input is empty, i.e. before the pod is listed.
mk_pod() { curl -s -H "Authorization: Bearer $TOKEN" "$API/pods" | jq ".items[] | select(.metadata.name | startswith(\"$1-\"))"; }
mk_uid() { mk_pod "$1" | jq -r .metadata.uid; }
mk_wait_running() {
  local i
  for i in $(seq $((${2:-30} * 10))); do
    [ "$(mk_pod "$1" | jq '[.status.containerStatuses[]? | .state.running != null] | length > 0 and all')" = true ] && return 0
    sleep 0.1
  done
  echo "mk_wait_running: $1 not running after ${2:-30} s" >&2; return 1
}
mk_wait_gone() {
  local i
  for i in $(seq $((${2:-30} * 10))); do
    [ -z "$(mk_pod "$1")" ] && return 0
    sleep 0.1
  done
  echo "mk_wait_gone: $1 still there after ${2:-30} s" >&2; return 1
}
export MK_AGENT_PID MK_SRC MK_ROOT MK_PORT MK_MANIFESTS MK_LOGS MK_CONTAINER_LOGS MK_CGROUP_ROOT MK_LAYOUT KC TOKEN API CG_CPU CG_MEM CG_PIDS
