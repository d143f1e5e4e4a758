#!/bin/bash
# Host-side delivery checks (run by run-all.sh; no VM): the unit passes `systemd-analyze verify`
# with no output, install.sh is idempotent, the Vagrantfile validates (`vagrant validate
# --ignore-provider`, Vagrant installed from Debian if missing), and every shell script parses.
# MKL_AGENT_BIN: a minikubelet binary for install.sh (any executable does for these checks).
set -uo pipefail
HERE=$(cd "$(dirname "$0")" && pwd); REPO=$(cd "$HERE/../.." && pwd)
fail=0
check() { if eval "$2"; then echo "PASS $1"; else echo "FAIL $1"; fail=1; fi; }
W=$(mktemp -d); trap 'rm -rf "$W"' EXIT

# systemd-analyze verify needs ExecStart's binary to exist; it only warns (rc 0) on bad keys, so
# any output is a failure. The host's /usr/local/bin/minikubelet is not ours to create: verify a
# copy whose ExecStart points at the built binary instead (every other line is verified as is).
bin=${MKL_AGENT_BIN:-}; [ -x "$bin" ] || bin=/bin/true
sed "s|/usr/local/bin/minikubelet|$bin|" "$REPO/systemd/minikubelet.service" > "$W/minikubelet.service"
if command -v systemd-analyze >/dev/null; then
  out=$(systemd-analyze verify "$W/minikubelet.service" 2>&1); echo "$out" | sed '/^$/d; s/^/  | /'
  check host_unit_verify_silent '[ -z "$out" ]'
else echo "SKIP host_unit_verify_silent: no systemd-analyze on this host"; fi

# install.sh into a scratch root, twice: the second run changes nothing
first=$("$REPO/scripts/install.sh" --root "$W/root" --binary "$bin" --with-examples 2>&1)
check host_install_first 'grep -q "changed" <<<"$first" && [ -x "$W/root/usr/local/bin/minikubelet" ] && [ -f "$W/root/etc/minikubelet/config.yaml" ] && [ -d "$W/root/etc/kubernetes/manifests" ]'
second=$("$REPO/scripts/install.sh" --root "$W/root" --binary "$bin" --with-examples 2>&1)
check host_install_idempotent 'grep -q "install: 0 changed" <<<"$second"'
n_examples=$(find "$REPO/manifests" -maxdepth 1 -name "*.yaml" 2>/dev/null | wc -l)
check host_install_examples '[ "$(find "$W/root/etc/kubernetes/manifests" -name "*.yaml" | wc -l)" = "$n_examples" ]'

# the shim's own binary beside --binary is installed with it (idempotently), and removed again
# by an install of a binary without one (that agent falls back to `minikubelet shim`)
mkdir -p "$W/pair" "$W/alone"; cp "$bin" "$W/pair/minikubelet"; cp "$bin" "$W/pair/minikubelet-shim"
cp "$bin" "$W/alone/minikubelet"
"$REPO/scripts/install.sh" --root "$W/root2" --binary "$W/pair/minikubelet" >/dev/null 2>&1
again=$("$REPO/scripts/install.sh" --root "$W/root2" --binary "$W/pair/minikubelet" 2>&1)
check host_install_shim_beside '[ -x "$W/root2/usr/local/bin/minikubelet-shim" ] && grep -q "install: 0 changed" <<<"$again"'
alone=$("$REPO/scripts/install.sh" --root "$W/root2" --binary "$W/alone/minikubelet" 2>&1)
check host_install_shim_removed '[ ! -e "$W/root2/usr/local/bin/minikubelet-shim" ] && grep -q "removed /usr/local/bin/minikubelet-shim" <<<"$alone"'

# The README's first command, scripts/demo.sh, with the built agent (MKL_BIN skips its cargo
# build): the example pods run, then --clean stops them and leaves no cgroup behind. Only the
# memory threshold: this shared disk may sit below the default disk thresholds.
if [ -x "${MKL_AGENT_BIN:-}" ] && ! ss -ltn 2>/dev/null | grep -q ':18250 '; then
  # $demo is timeout's pid: demo.sh execs the agent as timeout's only child, and timeout passes
  # the SIGTERM below on to it and to the process group timeout made for itself (the agent and
  # its helpers; the shims have sessions of their own and keep the pods for --clean). So only
  # what this check started is ended, by pid: no name pattern that could match another agent.
  MKL_BIN=$MKL_AGENT_BIN MKL_DEMO_PORT=18250 timeout 120 "$REPO/scripts/demo.sh" --eviction-hard="memory.available<100Mi" > "$W/demo.log" 2>&1 & demo=$!
  n_demo=$(find "$REPO/manifests" -maxdepth 1 -name "*.yaml" | wc -l)
  # the demo agent's admin token, from the kubeconfig it writes (every request needs it)
  running_pods() {
    tok=$(sed -n 's/^ *token: //p' /var/lib/minikubelet-demo/kubeconfig 2>/dev/null)
    curl -sf -H "Authorization: Bearer $tok" 127.0.0.1:18250/pods | grep -o '"phase":"Running"' | wc -l
  }
  seen=0
  for _ in $(seq 300); do seen=$(running_pods 2>/dev/null); [ "$seen" = "$n_demo" ] && break; sleep 0.2; done
  check host_demo_runs_examples '[ "$seen" = "$n_demo" ]'
  [ "$seen" = "$n_demo" ] || { echo "  | $seen of $n_demo Running"; sed 's/^/  | /' "$W/demo.log" | tail -15; }
  kill -TERM "$demo" 2>/dev/null; wait "$demo" 2>/dev/null
  clean=$(MKL_BIN=$MKL_AGENT_BIN MKL_DEMO_PORT=18250 "$REPO/scripts/demo.sh" --clean 2>&1)
  echo "$clean" | sed 's/^/  | /'
  check host_demo_clean 'grep -q "demo.sh: clean" <<<"$clean"'
else echo "SKIP host_demo: no agent binary (MKL_AGENT_BIN) or port 18250 busy"; fi

# every shell script of the delivery parses
for f in "$REPO"/scripts/*.sh "$REPO"/vagrant/*.sh "$HERE"/*.sh "$HERE"/lib/*.sh "$HERE"/lib/init \
         "$HERE"/guest/*.sh "$HERE"/harness/*.sh "$HERE"/scenarios/*.sh; do
  [ -f "$f" ] || continue
  case $(head -1 "$f") in *bash*) sh=bash ;; *) sh=sh ;; esac
  $sh -n "$f" 2>"$W/err" || { echo "  | $f: $(cat "$W/err")"; echo x >> "$W/syntax"; }
done
check host_scripts_parse '[ ! -s "$W/syntax" ]'

# Vagrant: validate offline without a box or provider (catches unknown keys and Ruby errors)
if [ -f "$REPO/vagrant/Vagrantfile" ]; then
  if ! command -v vagrant >/dev/null && [ "${MKL_VM_NO_VAGRANT:-0}" != 1 ]; then
    { DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends vagrant ||
      { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends vagrant; }
    } >"$W/apt.log" 2>&1 || cat "$W/apt.log"
  fi
  if command -v vagrant >/dev/null; then
    # its state dirs go to scratch space, not into the checkout or $HOME
    out=$(cd "$REPO/vagrant" && VAGRANT_CHECKPOINT_DISABLE=1 VAGRANT_DOTFILE_PATH="$W/vagrant-dot" \
      VAGRANT_HOME="$W/vagrant-home" vagrant validate --ignore-provider 2>&1); vrc=$?
    echo "$out" | sed 's/^/  | /'
    check host_vagrant_validate '[ "$vrc" = 0 ] && grep -q "validated successfully" <<<"$out"'
  else echo "SKIP host_vagrant_validate: vagrant not installed (MKL_VM_NO_VAGRANT=1 or apt failed)"; fi
fi
exit $fail
