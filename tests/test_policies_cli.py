"""generate, verify and diff as a user runs them on the demo: golden policies, CRD-valid output,
determinism, zero drops for the demo's own policies, the right drops when a rule is removed."""

from __future__ import annotations

import os
import random
import stat
from pathlib import Path

import orjson
import pytest
import yaml
from typer.testing import CliRunner

from flowgen.cli import app
from flowgen.policy.parsing import parse
from flowgen.policy.validation import validate
from tests.conftest import DEMO, ROOT
from tests.crd import crd_errors

EXPECTED = ROOT / "fixtures" / "expected" / "demo" / "policies"
UPDATE = os.environ.get("FLOWGEN_UPDATE_GOLDEN") == "1"
GENERATE = ["generate", "-A", "--default-deny", "--input-file", str(DEMO)]
runner = CliRunner()


def _generate(tmp_path: Path, *args: str) -> Path:
    out = tmp_path / "policies"
    result = runner.invoke(app, [*GENERATE, "--output-dir", str(out), *args])
    assert result.exit_code == 0, result.output
    return out


def _texts(folder: Path) -> dict[str, str]:
    return {p.name: p.read_text() for p in sorted(folder.iterdir())}


def test_demo_policies_match_the_golden_files(tmp_path: Path) -> None:
    out = _generate(tmp_path)
    produced = _texts(out)
    if UPDATE:
        EXPECTED.mkdir(parents=True, exist_ok=True)
        for old in EXPECTED.iterdir():
            old.unlink()
        for name, text in produced.items():
            (EXPECTED / name).write_text(_portable(text, out))
    expected = {name: _portable(text, out) for name, text in produced.items()}
    assert expected == _texts(EXPECTED), "run `make golden` and review the diff"


def _portable(text: str, out: Path) -> str:
    """The text with this machine's paths replaced by the ones a user would type."""
    return text.replace(str(DEMO), "fixtures/flows/demo.jsonl").replace(str(out), "policies")


@pytest.mark.parametrize("release", ["1.19", "1.20"])
def test_generated_policies_pass_the_crd_schema_and_agent_checks(tmp_path: Path, release: str) -> None:
    out = _generate(tmp_path, "--cilium-version", release, "--clusterwide")
    version = (1, int(release.split(".")[1]))
    for path in sorted(out.glob("*.yaml")):
        if path.name == "kustomization.yaml":
            continue
        for document in yaml.safe_load_all(path.read_text()):
            assert crd_errors(document, document["kind"], release) == [], path.name
        for policy in parse(path.read_text(), str(path)).policies:
            assert validate(policy, version) == [], path.name


def test_kafka_rules_only_before_1_20(tmp_path: Path) -> None:
    older = _generate(tmp_path / "a", "--cilium-version", "1.19")
    newer = tmp_path / "b" / "policies"
    result = runner.invoke(app, [*GENERATE, "--output-dir", str(newer), "--cilium-version", "1.20"])
    assert "kafka:" in (older / "data.flowgen-kafka.yaml").read_text()
    assert "kafka:" not in (newer / "data.flowgen-kafka.yaml").read_text()
    assert "Kafka rules were removed in Cilium 1.20" in result.stderr


def test_same_evidence_in_any_order_gives_identical_output(tmp_path: Path) -> None:
    lines = DEMO.read_bytes().splitlines()
    shuffled = lines + lines[:100]
    random.Random(7).shuffle(shuffled)
    copy = tmp_path / "shuffled.jsonl"
    copy.write_bytes(b"\n".join(shuffled) + b"\n")
    first = runner.invoke(app, ["generate", "-A", "-i", str(DEMO)])
    second = runner.invoke(app, ["generate", "-A", "-i", str(copy)])
    assert first.exit_code == second.exit_code == 0
    assert second.stdout == first.stdout.replace(str(DEMO), str(copy))


def test_generate_needs_a_scope() -> None:
    result = runner.invoke(app, ["generate", "-i", str(DEMO)])
    assert result.exit_code == 2
    assert result.stderr == "Error: say which workloads to generate for: -n NAMESPACE (repeatable) or -A\n"


def test_notes_and_report(tmp_path: Path) -> None:
    report = tmp_path / "report.md"
    result = runner.invoke(app, ["generate", "-n", "shop", "-i", str(DEMO), "--report", str(report)])
    assert result.exit_code == 0
    assert "policy-denied (1):" in result.stderr
    assert "data/postgres: POLICY_DENIED from shop/frontend on TCP/5432" in result.stderr
    text = report.read_text()
    assert text.startswith("# flowgen generate report\n") and "## Policy-denied drops seen" in text
    as_json = tmp_path / "report.json"
    runner.invoke(app, ["generate", "-n", "shop", "-i", str(DEMO), "--report", str(as_json)])
    kinds = {note["kind"] for note in orjson.loads(as_json.read_bytes())["notes"]}
    assert {"policy-denied", "little-evidence", "host-probes"} <= kinds


def test_rerun_removes_policies_no_longer_generated(tmp_path: Path) -> None:
    out = _generate(tmp_path)
    stale = out / "shop.flowgen-gone.yaml"
    stale.write_text((out / "shop.flowgen-api.yaml").read_text())
    mine = out / "mine.yaml"
    mine.write_text("# hand-written\n")
    _generate(tmp_path)
    assert not stale.exists() and mine.exists()


def test_verify_finds_no_drops_for_the_demos_own_policies(tmp_path: Path) -> None:
    out = _generate(tmp_path)
    result = runner.invoke(app, ["verify", "--policies", str(out), "-i", str(DEMO), "--exit-code", "-f", "json"])
    assert result.exit_code == 0, result.output
    report = orjson.loads(result.stdout)
    assert report["drops"] == [] and report["requests"] > 30


def _drop_rule(path: Path, section: str, needle: str) -> None:
    document = yaml.safe_load(path.read_text())
    document["spec"][section] = [e for e in document["spec"][section] if needle not in str(e)]
    path.write_text(yaml.safe_dump(document))


def test_verify_reports_what_a_removed_rule_breaks(tmp_path: Path) -> None:
    out = _generate(tmp_path)
    _drop_rule(out / "shop.flowgen-api.yaml", "ingress", "frontend")
    result = runner.invoke(app, ["verify", "--policies", str(out), "-i", str(DEMO), "--exit-code", "-f", "json"])
    assert result.exit_code == 1
    drops = {
        (d["source"], d["destination"], d["port"], d["l7"], tuple(d["refused_by"]))
        for d in orjson.loads(result.stdout)["drops"]
    }
    assert drops == {
        ("shop/frontend", "shop/api", 8080, None, ("ingress",)),
        ("shop/frontend", "shop/api", 8080, "GET /api/v1/products/1000?...", ("ingress",)),
        ("shop/frontend", "shop/api", 8080, "POST /api/v1/cart/items", ("ingress",)),
    } | {
        ("shop/frontend", "shop/api", 8080, f"GET /api/v1/products/{n}?...", ("ingress",))
        for n in (1001, 1002, 1003, 1004, 1005, 2000, 2007, 2014, 2021, 2028, 2035)
    }


def test_verify_lists_refused_dns_lookups_on_their_own(tmp_path: Path) -> None:
    out = tmp_path / "policies"
    runner.invoke(app, ["generate", "-A", "-i", str(DEMO), "--output-dir", str(out)])
    # Without its DNS rule the api workload cannot resolve api.stripe.com: its toFQDNs rule breaks.
    _drop_rule(out / "shop.flowgen-api.yaml", "egress", "coredns")
    result = runner.invoke(app, ["verify", "--policies", str(out), "-i", str(DEMO), "--exit-code"])
    assert result.exit_code == 1
    lines = result.stdout.splitlines()
    assert lines[1] == "DNS lookups that would be refused (toFQDNs names would stop resolving):"
    assert "shop/api -> kube-system/coredns UDP/53 DNS api.stripe.com" in result.stdout
    markdown = runner.invoke(app, ["verify", "--policies", str(out), "-i", str(DEMO), "-f", "markdown"])
    assert "## DNS lookups that would be refused" in markdown.stdout


GITOPS = """\
apiVersion: cilium.io/v2
kind: CiliumNetworkPolicy
metadata:
  name: flowgen-api
  namespace: shop
spec:
  endpointSelector:
    matchLabels:
      app.kubernetes.io/name: api
  ingress:
  - fromEndpoints:
    - matchLabels:
        app.kubernetes.io/name: frontend
    toPorts:
    - ports:
      - port: "8080"
        protocol: TCP
  - fromEndpoints:
    - matchLabels:
        app.kubernetes.io/name: legacy-admin
    toPorts:
    - ports:
      - port: "8443"
        protocol: TCP
---
apiVersion: apps/v1
kind: Deployment
metadata:
  name: api
"""


def test_diff_against_a_gitops_folder(tmp_path: Path) -> None:
    folder = tmp_path / "gitops"
    folder.mkdir()
    (folder / "api.yaml").write_text(GITOPS)
    result = runner.invoke(app, ["diff", "--existing", str(folder), "-n", "shop", "-i", str(DEMO), "-f", "json"])
    assert result.exit_code == 0, result.output
    report = orjson.loads(result.stdout)
    needed = {(d["source"], d["destination"], d["port"]) for d in report["needed"]}
    assert ("monitoring/prometheus", "shop/api", 9090) in needed
    assert ("shop/frontend", "shop/api", 8080) not in needed
    assert [u["rule"] for u in report["unused"]] == ["CiliumNetworkPolicy/shop/flowgen-api ingress[1]"]
    assert report["denied"][0]["drop_reason"] == "POLICY_DENIED"
    files = {f["name"]: f["status"] for f in report["files"]}
    assert files["CiliumNetworkPolicy/shop/flowgen-api"] == "changed"
    assert files["CiliumNetworkPolicy/shop/flowgen-orders"] == "added"
    api_diff = next(f["diff"] for f in report["files"] if f["name"] == "CiliumNetworkPolicy/shop/flowgen-api")
    assert "-        app.kubernetes.io/name: legacy-admin" in api_diff
    assert "Note: " in result.stderr and "kind Deployment" in result.stderr
    gate = runner.invoke(app, ["diff", "--existing", str(folder), "-n", "shop", "-i", str(DEMO), "--exit-code"])
    assert gate.exit_code == 1
    # With enable-policy=always, the shop pods no existing policy selects (frontend, orders...) deny
    # everything too: what they send and receive is needed as well; with never, nothing is.
    always = runner.invoke(
        app, ["diff", "--existing", str(folder), "-n", "shop", "-i", str(DEMO), "-f", "json", "--mode", "always"]
    )
    assert always.exit_code == 0, always.output
    needed_always = {(d["source"], d["destination"], d["port"]) for d in orjson.loads(always.stdout)["needed"]}
    assert needed < needed_always
    assert any(source == "shop/frontend" and destination != "shop/api" for source, destination, _ in needed_always)
    never = runner.invoke(
        app, ["diff", "--existing", str(folder), "-n", "shop", "-i", str(DEMO), "-f", "json", "--mode", "never"]
    )
    assert orjson.loads(never.stdout)["needed"] == []


def test_diff_from_the_cluster_through_kubectl(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    recorded = tmp_path / "recorded"
    recorded.mkdir()
    cnps = {"apiVersion": "v1", "kind": "List", "items": [yaml.safe_load(GITOPS.split("---", maxsplit=1)[0])]}
    cnps["items"][0]["metadata"].update(uid="1234", resourceVersion="99")
    cnps["items"][0]["status"] = {"conditions": [{"type": "Valid", "status": "True"}]}
    (recorded / "cnp.yaml").write_text(yaml.safe_dump(cnps))
    (recorded / "ccnp.yaml").write_text(yaml.safe_dump({"apiVersion": "v1", "kind": "List", "items": []}))
    kubectl = tmp_path / "bin" / "kubectl"
    kubectl.parent.mkdir()
    kubectl.write_text(
        "#!/bin/sh\n"
        f'echo "$@" >> {tmp_path}/calls\n'
        'case "$*" in\n'
        f"  *ciliumnetworkpolicies*) cat {recorded}/cnp.yaml ;;\n"
        f"  *ciliumclusterwidenetworkpolicies*) cat {recorded}/ccnp.yaml ;;\n"
        "  *) echo unexpected >&2; exit 1 ;;\n"
        "esac\n"
    )
    kubectl.chmod(kubectl.stat().st_mode | stat.S_IEXEC)
    monkeypatch.setenv("PATH", f"{kubectl.parent}{os.pathsep}{os.environ['PATH']}")
    result = runner.invoke(
        app, ["diff", "--from-cluster", "--context", "prod", "-n", "shop", "-i", str(DEMO), "-f", "json"]
    )
    assert result.exit_code == 0, result.output
    report = orjson.loads(result.stdout)
    assert [u["rule"] for u in report["unused"]] == ["CiliumNetworkPolicy/shop/flowgen-api ingress[1]"]
    calls = (tmp_path / "calls").read_text().splitlines()
    assert all(call.startswith("--context prod get ") and "-o yaml" in call for call in calls)
    assert not any(word in " ".join(calls) for word in ("apply", "delete", "edit", "patch"))


def test_system_namespaces_only_by_name_and_dns_stays_open_to_the_cluster() -> None:
    everything = runner.invoke(app, ["generate", "-A", "-i", str(DEMO)])
    assert "flowgen-coredns" not in everything.stdout
    assert "kube-system: -A leaves the system namespaces out" in everything.stderr
    union = runner.invoke(app, ["generate", "-A", "-n", "kube-system", "-i", str(DEMO)])
    assert {p.namespace for p in parse(union.stdout, "stdout").policies} == {
        "kube-system",
        *{p.namespace for p in parse(everything.stdout, "stdout").policies},
    }
    assert "kube-system: policies for system pods" in union.stderr
    named = runner.invoke(app, ["generate", "-n", "kube-system", "-i", str(DEMO)])
    (policy,) = parse(named.stdout, "stdout").policies
    (rule,) = policy.specs[0].ingress or ()
    assert rule.entities == ("cluster",)
    assert [(p.port, p.protocol.value) for r in rule.to_ports or () for p in r.ports] == [("53", "UDP"), ("53", "TCP")]
    assert "dns-server (1):" in named.stderr


def _fake_kubectl(tmp_path: Path, script: str, monkeypatch: pytest.MonkeyPatch) -> None:
    kubectl = tmp_path / "bin" / "kubectl"
    kubectl.parent.mkdir(exist_ok=True)
    kubectl.write_text("#!/bin/sh\n" + script)
    kubectl.chmod(kubectl.stat().st_mode | stat.S_IEXEC)
    monkeypatch.setenv("PATH", f"{kubectl.parent}{os.pathsep}{os.environ['PATH']}")


def test_cilium_version_auto_reads_the_daemonset_image(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    _fake_kubectl(tmp_path, 'echo "quay.io/cilium/cilium:v1.20.1@sha256:abc"\n', monkeypatch)
    result = runner.invoke(app, ["generate", "-n", "data", "-i", str(DEMO), "--cilium-version", "auto"])
    assert result.exit_code == 0, result.output
    assert "kafka:" not in result.stdout and "Kafka rules were removed in Cilium 1.20" in result.stderr


def test_cilium_version_auto_without_access_says_what_to_do(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    _fake_kubectl(
        tmp_path, 'echo "error: You must be logged in to the server (Unauthorized)" >&2\nexit 1\n', monkeypatch
    )
    result = runner.invoke(app, ["generate", "-n", "data", "-i", str(DEMO), "--cilium-version", "auto"])
    assert result.exit_code == 1
    assert result.stderr == (
        "Error: cannot read the Cilium version from the cluster (error: You must be logged in to the server "
        "(Unauthorized)); pass --cilium-version 1.19 (or your release)\n"
    )


def test_verify_warns_about_policies_cilium_would_reject(tmp_path: Path) -> None:
    folder = tmp_path / "policies"
    folder.mkdir()
    (folder / "api.yaml").write_text(GITOPS.split("---", maxsplit=1)[0].replace('port: "8080"', "port: 8080"))
    result = runner.invoke(app, ["verify", "-p", str(folder), "-i", str(DEMO), "-n", "shop"])
    assert result.exit_code == 0
    assert (
        "Warning: Cilium would reject this, so it would not be enforced: CiliumNetworkPolicy shop/flowgen-api: "
        "spec.ingress[0].toPorts[0].ports[0].port: 8080 is a YAML integer, but the CRD requires a string; quote it: "
        'port: "8080"'
    ) in result.stderr
    assert "not modelled" not in result.stdout


def test_diff_of_the_proposal_against_itself_finds_nothing(tmp_path: Path) -> None:
    out = _generate(tmp_path)
    result = runner.invoke(
        app, ["diff", "-e", str(out), "-A", "--default-deny", "-i", str(DEMO), "--exit-code", "-f", "json"]
    )
    assert result.exit_code == 0, result.output
    report = orjson.loads(result.stdout)
    assert report["needed"] == [] and report["unused"] == []
    assert {f["status"] for f in report["files"]} == {"unchanged"}
    assert [(d["source"], d["destination"]) for d in report["denied"]] == [("shop/frontend", "data/postgres")]


ONE_JOB_RUN = """\
apiVersion: cilium.io/v2
kind: CiliumNetworkPolicy
metadata:
  name: orders-from-one-run
  namespace: shop
spec:
  endpointSelector:
    matchLabels:
      app.kubernetes.io/name: orders
  ingress:
  - fromEndpoints:
    - matchLabels:
        job-name: nightly-report-29401440
        k8s:io.kubernetes.pod.namespace: batch
    toPorts:
    - ports:
      - port: "8080"
        protocol: TCP
"""


def test_verify_from_flows_matches_labels_the_workload_key_leaves_out(tmp_path: Path) -> None:
    # job-name changes with every CronJob run, so flowgen's workload key drops it; a hand-written
    # policy that selects one run must still be judged per flow, as Cilium would.
    folder = tmp_path / "policies"
    folder.mkdir()
    (folder / "orders.yaml").write_text(ONE_JOB_RUN)
    from_flows = runner.invoke(app, ["verify", "-p", str(folder), "-i", str(DEMO), "-n", "batch", "-f", "json"])
    drops = orjson.loads(from_flows.stdout)["drops"]
    to_orders = [d for d in drops if d["destination"] == "shop/orders"]
    assert to_orders
    by_uuid = {}
    for line in DEMO.read_bytes().splitlines():
        flow = orjson.loads(line).get("flow", {})
        by_uuid[flow.get("uuid")] = flow
    for drop in to_orders:
        uuid = drop["example"].split("flow ", 1)[1].split(" ", 1)[0]
        assert "k8s:job-name=nightly-report-29402880" in by_uuid[uuid]["source"]["labels"], drop
