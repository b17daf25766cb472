#!/usr/bin/env bash
# make e2e: check flowgen against a real Cilium + Hubble in a throwaway kind cluster.
#
# kind cluster (no default CNI) -> Cilium + Hubble Relay (helm) -> demo app (e2e/demo-app.yaml)
# -> flowgen observe from the relay -> flowgen graph -> flowgen generate --default-deny
# -> kubectl apply -k -> the app still works and Hubble shows no policy drops.
#
# Where docker, kind, helm or kubectl is missing (as on CI) it prints one "e2e: skipped: ..."
# line and exits 0; E2E_REQUIRE=1 makes that exit 1. Everything it writes goes under a
# temporary directory ($WORK), never into the repository, and the kubeconfig it uses lives
# there too, so your current kubectl context is left alone. Steps and knobs: docs/e2e.md.
set -euo pipefail

CLUSTER=flowgen-e2e
NAMESPACE=flowgen-e2e
# Must be a released Cilium version, i.e. a chart version on https://helm.cilium.io.
CILIUM_VERSION=${CILIUM_VERSION:-1.19.0}
OBSERVE_FOR=${E2E_OBSERVE:-90s}
SETTLE_SECONDS=${E2E_SETTLE:-30}
RELAY_PORT=${E2E_RELAY_PORT:-4245}
FLOWGEN=${FLOWGEN:-.venv/bin/flowgen}
# The server and client images of e2e/demo-app.yaml, loaded into kind when docker already has them.
DEMO_IMAGE=registry.k8s.io/e2e-test-images/agnhost:2.53
NEEDS="needs docker, kind, helm, kubectl; see docs/e2e.md"

# Until the cluster exists, use bash builtins only: the skip path must work with an empty PATH.
here=${BASH_SOURCE[0]%/*}
if [[ $here == "${BASH_SOURCE[0]}" ]]; then
  here=.
fi
cd "$here/.."

say() {
  printf 'e2e: %s\n' "$*"
}

# skip REASON [HINT]: a missing prerequisite; exit 0, or 1 under E2E_REQUIRE=1.
skip() {
  local hint=${2:-$NEEDS}
  if [[ ${E2E_REQUIRE:-} == 1 ]]; then
    printf 'e2e: failed: %s (%s; E2E_REQUIRE=1 turns a skip into a failure)\n' "$1" "$hint" >&2
    exit 1
  fi
  say "skipped: $1 ($hint)"
  exit 0
}

# fail MESSAGE: stop before anything was created.
fail() {
  printf 'e2e: FAIL: %s\n' "$1" >&2
  exit 1
}

missing=()
for tool in docker kind helm kubectl; do
  if ! command -v "$tool" >/dev/null; then
    missing+=("$tool")
  fi
done
if ((${#missing[@]})); then
  printf -v list '%s, ' "${missing[@]}"
  skip "${list%, } not found on PATH"
fi
if ! docker info >/dev/null 2>&1; then
  skip "docker is installed but 'docker info' failed: is the Docker daemon running?"
fi
if ! command -v "$FLOWGEN" >/dev/null; then
  skip "flowgen not found at $FLOWGEN" "make e2e installs it into .venv; or set FLOWGEN; see docs/e2e.md"
fi
if ! "$FLOWGEN" --version >/dev/null 2>&1; then
  fail "$FLOWGEN --version failed; run it to see why (or reinstall with: make clean && make e2e)"
fi
# Asking for --help with every option this script passes fails (unknown option) on a flowgen
# that does not have them yet, without touching the network.
if ! "$FLOWGEN" observe --server "localhost:$RELAY_PORT" --duration "$OBSERVE_FOR" --store "$NAMESPACE" \
  --output text --help >/dev/null 2>&1; then
  skip "flowgen observe cannot stream from Hubble Relay yet (no --server/--duration/--store)" "see docs/e2e.md"
fi
has_graph=0
if "$FLOWGEN" graph --store "$NAMESPACE" -n "$NAMESPACE" --help >/dev/null 2>&1; then
  has_graph=1
fi
has_generate=0
if "$FLOWGEN" generate --help >/dev/null 2>&1; then
  has_generate=1
fi

clusters=$(kind get clusters 2>/dev/null || true)
if [[ $'\n'$clusters$'\n' == *$'\n'"$CLUSTER"$'\n'* ]]; then
  fail "a kind cluster named $CLUSTER already exists (left by E2E_KEEP=1?); delete it with: kind delete cluster --name $CLUSTER"
fi
if (exec 3<>"/dev/tcp/127.0.0.1/$RELAY_PORT") 2>/dev/null; then
  fail "localhost:$RELAY_PORT is already in use (another hubble port-forward?); stop it or set E2E_RELAY_PORT"
fi

WORK=$(mktemp -d "${TMPDIR:-/tmp}/flowgen-e2e.XXXXXX")
export KUBECONFIG="$WORK/kubeconfig"
export HELM_CACHE_HOME="$WORK/helm/cache" HELM_CONFIG_HOME="$WORK/helm/config" HELM_DATA_HOME="$WORK/helm/data"

step="setting up"
created_cluster=0
pf_pid=""
verdict=""
results=()
failures=0

cleanup() {
  local rc=$?
  trap - EXIT INT TERM
  if [[ -n $pf_pid ]]; then
    kill "$pf_pid" 2>/dev/null || true
    wait "$pf_pid" 2>/dev/null || true
  fi
  if ((rc != 0)) && [[ -z $verdict ]]; then
    if ((${#results[@]})); then
      summary
    fi
    printf 'e2e: FAIL while %s (exit status %d)\n' "$step" "$rc" >&2
  fi
  if [[ ${E2E_KEEP:-} == 1 ]] && ((created_cluster)); then
    say "kept (E2E_KEEP=1): cluster $CLUSTER and $WORK; use it with: export KUBECONFIG=$WORK/kubeconfig"
    say "remove them with: kind delete cluster --name $CLUSTER && rm -rf $WORK"
  else
    if ((created_cluster)); then
      say "deleting kind cluster $CLUSTER"
      kind delete cluster --name "$CLUSTER" >/dev/null 2>&1 || say "could not delete it: kind delete cluster --name $CLUSTER"
    fi
    if ((rc == 0)); then
      rm -rf "$WORK"
    else
      say "logs, store and policies kept for inspection in $WORK"
    fi
  fi
  exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

begin() {
  step=$1
  say "== $1"
}

# record PASS|FAIL TEXT: one line of the closing summary.
record() {
  results+=("$1  $2")
  if [[ $1 != PASS ]]; then
    failures=$((failures + 1))
  fi
}

summary() {
  say "summary (Cilium $CILIUM_VERSION, kind cluster $CLUSTER, namespace $NAMESPACE)"
  local line
  for line in "${results[@]}"; do
    printf '  %s\n' "$line"
  done
}

wait_for_relay_port() {
  local tries
  for ((tries = 0; tries < 30; tries++)); do
    if ! kill -0 "$pf_pid" 2>/dev/null; then
      cat "$WORK/port-forward.log" >&2
      return 1
    fi
    if (exec 3<>"/dev/tcp/127.0.0.1/$RELAY_PORT") 2>/dev/null; then
      return 0
    fi
    sleep 1
  done
  cat "$WORK/port-forward.log" >&2
  return 1
}

begin "creating kind cluster $CLUSTER (one control-plane, one worker, no default CNI)"
cat >"$WORK/kind.yaml" <<'EOF'
kind: Cluster
apiVersion: kind.x-k8s.io/v1alpha4
networking:
  # Cilium is the CNI, so kind must not install its own (kindnet).
  disableDefaultCNI: true
nodes:
  - role: control-plane
  - role: worker
EOF
# Set first: the name was free a moment ago, so whatever exists under it now is ours to delete.
created_cluster=1
kind create cluster --name "$CLUSTER" --config "$WORK/kind.yaml" --kubeconfig "$KUBECONFIG"
if docker image inspect "$DEMO_IMAGE" >/dev/null 2>&1; then
  kind load docker-image "$DEMO_IMAGE" --name "$CLUSTER"
fi

begin "installing Cilium $CILIUM_VERSION with Hubble and Hubble Relay (helm)"
# kind keeps kube-proxy, so Cilium runs beside it (kubeProxyReplacement=false); replacing it
# would also need k8sServiceHost set to the control-plane container. The nodes pull the
# Cilium images themselves (IfNotPresent), so they need internet access.
helm install cilium cilium --repo https://helm.cilium.io --version "$CILIUM_VERSION" \
  --namespace kube-system \
  --set kubeProxyReplacement=false \
  --set ipam.mode=kubernetes \
  --set image.pullPolicy=IfNotPresent \
  --set operator.replicas=1 \
  --set hubble.enabled=true \
  --set hubble.relay.enabled=true \
  >"$WORK/helm.log"

begin "waiting for Cilium, the nodes, CoreDNS and Hubble Relay"
kubectl -n kube-system rollout status ds/cilium --timeout=10m
kubectl -n kube-system rollout status deploy/cilium-operator --timeout=5m
# Envoy runs as its own DaemonSet by default since Cilium 1.16.
if kubectl -n kube-system get ds/cilium-envoy >/dev/null 2>&1; then
  kubectl -n kube-system rollout status ds/cilium-envoy --timeout=5m
fi
kubectl wait --for=condition=Ready nodes --all --timeout=5m
kubectl -n kube-system rollout status deploy/coredns --timeout=5m
kubectl -n kube-system rollout status deploy/hubble-relay --timeout=5m
record PASS "Cilium $CILIUM_VERSION and Hubble Relay ready"

begin "deploying the demo app (e2e/demo-app.yaml) into namespace $NAMESPACE"
kubectl apply -f e2e/demo-app.yaml
kubectl -n "$NAMESPACE" rollout status deploy/server --timeout=5m
kubectl -n "$NAMESPACE" rollout status deploy/client --timeout=5m
record PASS "demo app running (server, client, reporter CronJob)"

begin "port-forwarding Hubble Relay to localhost:$RELAY_PORT"
# The relay Service serves plain gRPC on port 80 unless hubble.relay.tls.server.enabled is set.
kubectl -n kube-system port-forward svc/hubble-relay "$RELAY_PORT:80" >"$WORK/port-forward.log" 2>&1 &
pf_pid=$!
wait_for_relay_port

begin "observing flows from Hubble Relay for $OBSERVE_FOR (flowgen observe)"
"$FLOWGEN" observe --server "localhost:$RELAY_PORT" --duration "$OBSERVE_FOR" --store "$WORK/store" \
  --output text | tee "$WORK/observe.txt"
if [[ -e $WORK/store ]]; then
  record PASS "flowgen observe streamed $OBSERVE_FOR of flows into a store"
else
  record FAIL "flowgen observe exited 0 but wrote no store at $WORK/store"
fi

if ((has_graph)); then
  begin "the observed graph of namespace $NAMESPACE (flowgen graph)"
  "$FLOWGEN" graph --store "$WORK/store" -n "$NAMESPACE" | tee "$WORK/graph.txt"
  record PASS "flowgen graph read the store"
else
  say "flowgen graph is not built yet: not printing the graph"
fi

if ((!has_generate)); then
  say "stopping after observe: flowgen generate is not built yet"
  summary
  verdict=stopped
  if ((failures)); then
    say "FAIL"
    exit 1
  fi
  say "PASS (up to observe)"
  exit 0
fi

begin "generating default-deny policies for $NAMESPACE (flowgen generate)"
"$FLOWGEN" generate -n "$NAMESPACE" --store "$WORK/store" --default-deny --output-dir "$WORK/policies"
record PASS "flowgen generate wrote $WORK/policies"

begin "applying the generated policies (kubectl apply -k)"
kubectl apply -k "$WORK/policies"
applied_at=$SECONDS
policies=$(kubectl -n "$NAMESPACE" get ciliumnetworkpolicies -o name)
if [[ -n $policies ]]; then
  mapfile -t applied <<<"$policies"
  record PASS "CiliumNetworkPolicies in $NAMESPACE after the apply: ${#applied[@]}"
else
  record FAIL "kubectl apply -k created no CiliumNetworkPolicy in $NAMESPACE"
fi
say "letting the demo app run under the policies for ${SETTLE_SECONDS}s"
sleep "$SETTLE_SECONDS"

begin "checking the client still reaches the server"
since="$((SECONDS - applied_at))s"
kubectl -n "$NAMESPACE" logs deploy/client --since="$since" >"$WORK/client.log"
ok=$(grep -c '^request ok' "$WORK/client.log" || true)
bad=$(grep -c '^request failed' "$WORK/client.log" || true)
if ((ok > 0 && bad == 0)); then
  record PASS "client loop since the apply: $ok requests ok, none failed"
else
  record FAIL "client loop since the apply: $ok requests ok, $bad failed (see $WORK/client.log)"
fi
code=$(kubectl -n "$NAMESPACE" exec deploy/client -- curl -s -o /dev/null -m 5 -w '%{http_code}' http://server/hostname || true)
if [[ $code == 200 ]]; then
  record PASS "a fresh request from the client pod gets HTTP 200"
else
  record FAIL "a fresh request from the client pod got '$code', not HTTP 200"
fi

begin "looking for policy drops in $NAMESPACE since the apply (hubble observe in each Cilium agent)"
# Each agent's hubble sees only its own node, so ask every one of them. The margin covers
# SECONDS counting whole seconds; before the apply there was no policy to deny anything.
since="$((SECONDS - applied_at + 5))s"
: >"$WORK/drops.jsonl"
agent_pods=$(kubectl -n kube-system get pods -l k8s-app=cilium -o name)
mapfile -t agents <<<"$agent_pods"
for agent in "${agents[@]}"; do
  kubectl -n kube-system exec "$agent" -c cilium-agent -- \
    hubble observe --namespace "$NAMESPACE" --verdict DROPPED --since "$since" -o json >>"$WORK/drops.jsonl"
done
# Go's protojson may put a space after the colon, so match either spelling.
denied=$(grep -cE '"drop_reason_desc": ?"POLICY_DEN(IED|Y)"' "$WORK/drops.jsonl" || true)
if ((denied == 0)); then
  record PASS "no POLICY_DENIED drops in $NAMESPACE since the apply (${#agents[@]} agents asked)"
else
  record FAIL "$denied POLICY_DENIED drops in $NAMESPACE since the apply (see $WORK/drops.jsonl)"
  "$FLOWGEN" observe --input-file "$WORK/drops.jsonl" || true
fi

summary
verdict=finished
if ((failures)); then
  say "FAIL ($failures of ${#results[@]} checks failed)"
  exit 1
fi
say "PASS"
