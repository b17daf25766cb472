"""Scenario fixtures: one small capture per case flowgen must get right (fixtures/make_scenarios.py),
its outputs held against reviewed golden files (fixtures/expected/scenarios/<case>/), its policies
replayed against its own flows, and the point of each scenario stated as plain assertions.

Regenerate the captures with `make fixtures` and the golden files with `make golden`
(FLOWGEN_UPDATE_GOLDEN=1), then review the diff.
"""

from __future__ import annotations

import importlib.util
import os
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson
import pytest
import yaml
from typer.testing import CliRunner

from flowgen.cli import app
from tests.conftest import ROOT

FLOWS = ROOT / "fixtures" / "flows" / "scenarios"
EXPECTED = ROOT / "fixtures" / "expected" / "scenarios"
UPDATE = os.environ.get("FLOWGEN_UPDATE_GOLDEN") == "1"
runner = CliRunner()


def _load_script() -> Any:
    spec = importlib.util.spec_from_file_location("make_scenarios", ROOT / "fixtures" / "make_scenarios.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


SCRIPT = _load_script()
CASES: list[str] = sorted(SCRIPT.CASES)


def _cases() -> list[Any]:
    return [pytest.param(case, id=case) for case in CASES]


def _capture(case: str) -> Path:
    return FLOWS / f"{case}.jsonl"


def _portable(text: str, case: str, out: Path) -> str:
    """The text with this machine's paths replaced by the ones a user would type to regenerate it."""
    return text.replace(str(_capture(case)), f"fixtures/flows/scenarios/{case}.jsonl").replace(
        str(out), f"fixtures/expected/scenarios/{case}"
    )


@dataclass(frozen=True)
class Generated:
    folder: Path
    # File name -> text, as the golden files hold them (graph.txt included).
    files: dict[str, str]


@pytest.fixture(scope="module")
def generated(tmp_path_factory: pytest.TempPathFactory) -> Callable[[str], Generated]:
    """`flowgen generate` (and `flowgen graph`) on a case, run once per case."""
    done: dict[str, Generated] = {}

    def run(case: str) -> Generated:
        if case not in done:
            out = tmp_path_factory.mktemp(case) / "policies"
            args = ["generate", "-A", "--default-deny", *SCRIPT.ARGS.get(case, ())]
            args += ["--input-file", str(_capture(case)), "--output-dir", str(out)]
            result = runner.invoke(app, [*args, "--report", str(out / "report.md")])
            assert result.exit_code == 0, f"{result.output}\n{result.exception!r}"
            graph = runner.invoke(app, ["graph", "-i", str(_capture(case))])
            assert graph.exit_code == 0, graph.output
            files = {p.name: _portable(p.read_text(), case, out) for p in sorted(out.iterdir())}
            files["graph.txt"] = _portable(graph.stdout, case, out)
            done[case] = Generated(out, files)
        return done[case]

    return run


# ---------------------------------------------------------------------------
# The files


def test_every_case_has_its_capture_and_golden_folder() -> None:
    assert sorted(p.stem for p in FLOWS.glob("*.jsonl")) == CASES, "run `make fixtures`"
    assert sorted(p.name for p in EXPECTED.iterdir() if p.is_dir()) == CASES, "run `make golden`"


@pytest.mark.parametrize("case", [pytest.param(case, id=case) for case in CASES])
def test_capture_matches_its_script(case: str) -> None:
    assert SCRIPT.build(case) == _capture(case).read_bytes(), "run `make fixtures` and review the diff"


@pytest.mark.parametrize("case", _cases())
def test_outputs_match_the_golden_files(case: str, generated: Callable[[str], Generated]) -> None:
    produced = generated(case).files
    golden = EXPECTED / case
    if UPDATE:
        golden.mkdir(parents=True, exist_ok=True)
        for old in golden.iterdir():
            if old.name not in produced:
                old.unlink()
        for name, text in produced.items():
            (golden / name).write_text(text)
    expected = {p.name: p.read_text() for p in sorted(golden.iterdir())}
    assert produced == expected, "run `make golden` and review the diff"


def _verify(policies: Path, case: str) -> dict[str, Any]:
    result = runner.invoke(app, ["verify", "--policies", str(policies), "-i", str(_capture(case)), "-f", "json"])
    assert result.exit_code == 0, result.output
    report: dict[str, Any] = orjson.loads(result.stdout)
    return report


@pytest.mark.parametrize("case", _cases())
def test_generated_policies_drop_no_observed_request(case: str, generated: Callable[[str], Generated]) -> None:
    """Only requests whose values no rule can carry (left out with a note) are refused."""
    report = _verify(generated(case).folder, case)
    assert sorted(drop["l7"] for drop in report["drops"]) == sorted(SCRIPT.LEFT_OUT.get(case, ()))
    assert report["requests"] > 0


@pytest.mark.parametrize("case", _cases())
def test_golden_policies_drop_no_observed_request(case: str) -> None:
    """The golden files, hand-written ones included, admit every allowed request of their capture."""
    report = _verify(EXPECTED / case, case)
    assert sorted(drop["l7"] for drop in report["drops"]) == sorted(SCRIPT.LEFT_OUT.get(case, ()))
    assert report["requests"] > 0


# ---------------------------------------------------------------------------
# What each scenario is about


def _policy(generated: Generated, namespace: str, name: str) -> dict[str, Any]:
    document: dict[str, Any] = yaml.safe_load(generated.files[f"{namespace}.{name}.yaml"])
    return document


def _entries(policy: dict[str, Any], section: str) -> list[dict[str, Any]]:
    entries: list[dict[str, Any]] = policy["spec"].get(section, [])
    return entries


def _peers(entry: dict[str, Any]) -> list[dict[str, str]]:
    return [s["matchLabels"] for key in ("fromEndpoints", "toEndpoints") for s in entry.get(key, [])]


def _names(entry: dict[str, Any]) -> set[str]:
    return {labels.get("app.kubernetes.io/name", "") for labels in _peers(entry)}


def _only(entries: list[dict[str, Any]], app_name: str) -> dict[str, Any]:
    (entry,) = [e for e in entries if app_name in _names(e)]
    return entry


def _ports(entry: dict[str, Any]) -> set[tuple[str, str]]:
    return {(p["port"], p["protocol"]) for rule in entry.get("toPorts", []) for p in rule["ports"]}


def _l7(entry: dict[str, Any], kind: str) -> list[dict[str, Any]]:
    return [r for rule in entry.get("toPorts", []) for r in rule.get("rules", {}).get(kind, [])]


def _http_allows(entry: dict[str, Any], method: str, path: str) -> bool:
    return any(re.fullmatch(rule["method"], method) and re.fullmatch(rule["path"], path) for rule in _l7(entry, "http"))


def _selectors(generated: Generated) -> Iterator[dict[str, str]]:
    """Every matchLabels in every generated policy of a case."""
    for name, text in generated.files.items():
        if name.endswith(".yaml") and name != "kustomization.yaml":
            document = yaml.safe_load(text)
            yield document["spec"]["endpointSelector"].get("matchLabels", {})
            for section in ("ingress", "egress"):
                for entry in _entries(document, section):
                    yield from _peers(entry)


def _report_row(generated: Generated, workload: str, text: str) -> str:
    (row,) = [
        line
        for line in generated.files["report.md"].splitlines()
        if line.startswith(f"| {workload} |") and text in line
    ]
    return row


def test_rest_ids_become_path_regexes_and_no_l4_allow_beside_them(generated: Callable[[str], Generated]) -> None:
    out = generated("rest-ids")
    (entry,) = _entries(_policy(out, "shop", "flowgen-api"), "ingress")
    assert _names(entry) == {"frontend"} and _ports(entry) == {("8080", "TCP")}
    # Every port rule for the frontend carries the HTTP rules: no L4-only allow that would make them moot.
    assert all(rule.get("rules", {}).get("http") for rule in entry["toPorts"])
    assert _http_allows(entry, "GET", "/api/v1/items/123?x=1")
    assert _http_allows(entry, "GET", "/api/v1/items/3f2504e0-4f89-11d3-9a0c-0305e82c3301")
    assert _http_allows(entry, "GET", "/api/v1/users/42/orders/9f86d081884c7d65?page=2")
    assert _http_allows(entry, "POST", "/api/v1/items")
    assert not _http_allows(entry, "POST", "/api/v1/items/123")
    assert not _http_allows(entry, "DELETE", "/api/v1/items/123")
    assert not _http_allows(entry, "GET", "/api/v1/admin/users")
    assert not _http_allows(entry, "GET", "/api/v1/items/123/../../admin")
    # Ids generalize to their class, never to any segment: words nobody sent stay out.
    assert _http_allows(entry, "GET", "/api/v1/items/98765")
    assert _http_allows(entry, "GET", "/api/v1/users/5/orders/00ff00ff00ff00ff")
    for word in ("export?format=csv", "admin", "debug", "internal"):
        assert not _http_allows(entry, "GET", f"/api/v1/items/{word}")
        assert not _http_allows(entry, "GET", f"/api/v1/users/42/orders/{word}")
    assert not _http_allows(entry, "GET", "/api/v1/users/admin/orders/9f86d081884c7d65")
    egress = _only(_entries(_policy(out, "shop", "flowgen-frontend"), "egress"), "api")
    assert _l7(egress, "http") == _l7(entry, "http")


def test_dns_fqdn_gives_to_fqdns_and_a_dns_rule_with_exactly_the_queried_names(
    generated: Callable[[str], Generated],
) -> None:
    egress = _entries(_policy(generated("dns-fqdn"), "shop", "flowgen-billing"), "egress")
    (fqdn,) = [e for e in egress if "toFQDNs" in e]
    # Both addresses of the answer are named: one by destination_names, one by the DNS answer alone.
    assert fqdn["toFQDNs"] == [{"matchName": "api.stripe.com"}] and _ports(fqdn) == {("443", "TCP")}
    assert not [e for e in egress if "toCIDR" in e or "toCIDRSet" in e or "toEntities" in e]
    (dns,) = [e for e in egress if _l7(e, "dns")]
    assert _names(dns) == {"coredns"} and _ports(dns) == {("53", "UDP"), ("53", "TCP")}
    assert sorted(s["matchName"] for s in _l7(dns, "dns")) == [
        "api.stripe.com",
        "api.stripe.com.shop.svc.cluster.local",
        "ledger.shop.svc.cluster.local",
    ]
    assert _http_allows(_only(egress, "ledger"), "GET", "/balance")


def _kafka(generated: Generated, namespace: str, name: str, section: str, peer: str) -> list[dict[str, str]]:
    return _l7(_only(_entries(_policy(generated, namespace, name), section), peer), "kafka")


def test_kafka_producer_gets_role_produce_per_topic(generated: Callable[[str], Generated]) -> None:
    out = generated("kafka")
    produce = [{"role": "produce", "topic": "orders"}, {"role": "produce", "topic": "orders-audit"}]
    assert _kafka(out, "shop", "flowgen-orders", "egress", "kafka") == produce
    assert _kafka(out, "data", "flowgen-kafka", "ingress", "orders") == produce


def test_kafka_consumer_gets_role_consume_for_its_topic_only(generated: Callable[[str], Generated]) -> None:
    out = generated("kafka")
    assert _kafka(out, "shop", "flowgen-notifier", "egress", "kafka") == [{"role": "consume", "topic": "orders"}]
    assert _kafka(out, "data", "flowgen-kafka", "ingress", "notifier") == [{"role": "consume", "topic": "orders"}]
    newer = runner.invoke(app, ["generate", "-A", "-i", str(_capture("kafka")), "--cilium-version", "1.20"])
    note = "shop/notifier: to data/kafka port 9092: Kafka rules were removed in Cilium 1.20; allowed at L4 only"
    assert f"{note} (topics seen: orders)" in newer.stderr


def test_kafka_rules_are_left_out_for_cilium_1_20_with_a_note(tmp_path: Path) -> None:
    out = tmp_path / "policies"
    result = runner.invoke(
        app, ["generate", "-A", "-i", str(_capture("kafka")), "--output-dir", str(out), "--cilium-version", "1.20"]
    )
    assert result.exit_code == 0, result.output
    broker = yaml.safe_load((out / "data.flowgen-kafka.yaml").read_text())
    for entry in _entries(broker, "ingress"):
        assert _ports(entry) == {("9092", "TCP")} and all("rules" not in rule for rule in entry["toPorts"])
    for path in out.glob("*.flowgen-*.yaml"):
        document = yaml.safe_load(path.read_text())
        assert not [e for s in ("ingress", "egress") for e in _entries(document, s) if _l7(e, "kafka")], path.name
    assert (
        "shop/orders: to data/kafka port 9092: Kafka rules were removed in Cilium 1.20; allowed at L4 only "
        "(topics seen: orders, orders-audit)" in result.stderr
    )


def test_grpc_calls_become_post_and_the_exact_method_paths(generated: Callable[[str], Generated]) -> None:
    (entry,) = _entries(_policy(generated("grpc"), "shop", "flowgen-payments"), "ingress")
    assert _names(entry) == {"checkout"} and _ports(entry) == {("50051", "TCP")}
    assert _l7(entry, "http") == [
        {"method": "POST", "path": r"/payments\.v1\.PaymentService/Authorize"},
        {"method": "POST", "path": r"/payments\.v1\.PaymentService/Capture"},
    ]
    assert _http_allows(entry, "POST", "/payments.v1.PaymentService/Capture")
    assert not _http_allows(entry, "POST", "/payments.v1.PaymentService/Refund")
    assert not _http_allows(entry, "GET", "/payments.v1.PaymentService/Capture")


def test_cross_namespace_scrape_names_the_namespace_on_both_sides(generated: Callable[[str], Generated]) -> None:
    out = generated("cross-namespace-scrape")
    prometheus = {"app.kubernetes.io/name": "prometheus", "k8s:io.kubernetes.pod.namespace": "monitoring"}
    for namespace, name, port in (("shop", "flowgen-api", "9090"), ("data", "flowgen-postgres-exporter", "9187")):
        (entry,) = _entries(_policy(out, namespace, name), "ingress")
        assert _peers(entry) == [prometheus] and _ports(entry) == {(port, "TCP")}
        assert _l7(entry, "http") == [{"method": "GET", "path": "/metrics"}]
    egress = _entries(_policy(out, "monitoring", "flowgen-prometheus"), "egress")
    assert sorted(_peers(e)[0]["k8s:io.kubernetes.pod.namespace"] for e in egress) == ["data", "shop"]


def test_host_probes_are_allowed_from_the_host_entity(generated: Callable[[str], Generated]) -> None:
    out = generated("host-probes")
    web = _entries(_policy(out, "shop", "flowgen-web"), "ingress")
    (probes,) = [e for e in web if e.get("fromEntities") == ["host"]]
    assert _ports(probes) == {("8080", "TCP")}
    assert _l7(probes, "http") == [{"method": "GET", "path": "/livez"}, {"method": "GET", "path": "/readyz"}]
    redis = _entries(_policy(out, "shop", "flowgen-redis"), "ingress")
    (tcp_probe,) = [e for e in redis if e.get("fromEntities") == ["host"]]
    assert tcp_probe["toPorts"] == [{"ports": [{"port": "6379", "protocol": "TCP"}]}]
    assert _report_row(out, "shop/web", "kubelet probes") and _report_row(out, "shop/redis", "kubelet probes")


def test_kube_apiserver_is_an_entity_both_ways(generated: Callable[[str], Generated]) -> None:
    policy = _policy(generated("kube-apiserver"), "platform", "flowgen-cert-operator")
    # The API server's identity also carries reserved:remote-node; kube-apiserver is the entity to name.
    assert _entries(policy, "egress") == [
        {"toEntities": ["kube-apiserver"], "toPorts": [{"ports": [{"port": "6443", "protocol": "TCP"}]}]}
    ]
    assert _entries(policy, "ingress") == [
        {"fromEntities": ["kube-apiserver"], "toPorts": [{"ports": [{"port": "9443", "protocol": "TCP"}]}]}
    ]


def test_world_without_names_gives_cidrs_world_for_the_public_port_and_cidrs_for_partners(
    generated: Callable[[str], Generated],
) -> None:
    out = generated("world-no-names")
    ingress = _entries(_policy(out, "edge", "flowgen-gateway"), "ingress")
    assert [e for e in ingress if "fromEntities" in e] == [
        {"fromEntities": ["world"], "toPorts": [{"ports": [{"port": "8443", "protocol": "TCP"}]}]}
    ]
    partners = sorted((e["fromCIDR"], e["toPorts"]) for e in ingress if "fromCIDR" in e)
    port = [{"ports": [{"port": "9443", "protocol": "TCP"}]}]
    assert partners == [(["192.0.2.140/32"], port), (["198.51.100.23/32"], port)]
    egress = _entries(_policy(out, "edge", "flowgen-sftp-sync"), "egress")
    assert sorted((e["toCIDR"], _ports(e)) for e in egress) == [
        (["198.51.100.7/32"], {("443", "TCP")}),
        (["203.0.113.250/32"], {("22", "TCP")}),
    ]


def test_denied_drops_are_listed_in_the_report(generated: Callable[[str], Generated]) -> None:
    out = generated("denied-drops")
    report = out.files["report.md"]
    section = report.split("## Policy-denied drops seen", 1)[1].split("\n## ", 1)[0]
    rows = sorted(
        line.split(" | ")[1].split(":")[0] for line in section.splitlines() if line.startswith("| ") and "from" in line
    )
    assert rows == [
        "POLICY_DENIED from 192.0.2.66/32 on TCP/22",
        "POLICY_DENIED from shop/api on UDP/123",
        "POLICY_DENIED from shop/frontend on TCP/5432",
        "POLICY_DENY from shop/api on TCP/25",
    ]


def test_denied_drops_get_no_allow_rule(generated: Callable[[str], Generated]) -> None:
    out = generated("denied-drops")
    postgres = _entries(_policy(out, "data", "flowgen-postgres"), "ingress")
    assert [_names(e) for e in postgres] == [{"api"}]
    frontend = _policy(out, "shop", "flowgen-frontend")
    assert [_names(e) for e in _entries(frontend, "egress")] == [{"api"}]
    assert "ingress" not in frontend["spec"]
    api = _policy(out, "shop", "flowgen-api")
    assert not [e for e in _entries(api, "egress") if set(e) & {"toCIDR", "toCIDRSet", "toEntities", "toFQDNs"}]


VOLATILE_KEYS = {
    "pod-template-hash",
    "helm.sh/chart",
    "app.kubernetes.io/version",
    "statefulset.kubernetes.io/pod-name",
    "controller-revision-hash",
    "apps.kubernetes.io/pod-index",
    "job-name",
    "batch.kubernetes.io/job-name",
    "controller-uid",
    "batch.kubernetes.io/controller-uid",
}


@pytest.mark.parametrize(
    ("case", "namespace", "workload", "peers"),
    [
        pytest.param("rollout-churn", "shop", "checkout", {"frontend", "redis"}, id="rollout-churn"),
        pytest.param("statefulset", "data", "cassandra", {"cassandra", "inventory"}, id="statefulset"),
        pytest.param("cronjob", "batch", "export", {"coredns", "api"}, id="cronjob"),
    ],
)
def test_pods_that_come_and_go_are_one_workload(
    case: str, namespace: str, workload: str, peers: set[str], generated: Callable[[str], Generated]
) -> None:
    out = generated(case)
    assert [n for n in out.files if workload in n] == [f"{namespace}.flowgen-{workload}.yaml"]
    policy = _policy(out, namespace, f"flowgen-{workload}")
    assert policy["spec"]["endpointSelector"] == {"matchLabels": {"app.kubernetes.io/name": workload}}
    entries = _entries(policy, "ingress") + _entries(policy, "egress")
    assert set().union(*(_names(e) for e in entries)) == peers
    for section in ("ingress", "egress"):
        # One entry per peer: the replicas, runs and generations were not told apart.
        named = [frozenset(_names(e)) for e in _entries(policy, section)]
        assert len(named) == len(set(named))
    assert not [labels for labels in _selectors(out) if VOLATILE_KEYS & set(labels)]
    assert [line for line in out.files["graph.txt"].splitlines() if f"{namespace}/{workload} " in line]


def test_hostile_values_are_left_out_and_paths_stay_literal(generated: Callable[[str], Generated]) -> None:
    files = generated("hostile-values").files
    crawler = _policy(generated("hostile-values"), "shop", "flowgen-crawler")
    names = [
        n for e in _entries(crawler, "egress") for p in e.get("toPorts", []) for n in p.get("rules", {}).get("dns", [])
    ]
    assert names == [{"matchName": "ok.example.com"}]
    api = _policy(generated("hostile-values"), "shop", "flowgen-api")
    paths = {r["path"] for e in _entries(api, "ingress") for p in e["toPorts"] for r in p["rules"]["http"]}
    assert re.escape("/search(.*)") in paths and not re.fullmatch(re.escape("/search(.*)"), "/search/anything")
    assert "'*.wildcard.example.org' contains '*'" in files["report.md"]


def test_world_identity_pods_are_resolved_to_their_workloads(generated: Callable[[str], Generated]) -> None:
    """Endpoints with the world identity that name a pod (the IP cache had not caught up) get the rules
    of the workload the pod is, by pod name or owner; never a CIDR for a pod address."""
    out = generated("world-pod-identity")
    assert not [name for name, text in out.files.items() if "CIDR" in text and name != "report.md"]
    frontend = _policy(out, "shop", "flowgen-frontend")
    assert sorted(n for e in _entries(frontend, "egress") for n in _names(e)) == ["api", "cache"]
    (ledger,) = _entries(_policy(out, "ops", "flowgen-ledger"), "ingress")
    assert _names(ledger) == {"reporter"} and _ports(ledger) == {("5432", "TCP")}
    resolved = [line for line in out.files["report.md"].splitlines() if "world identity in some flows" in line]
    assert [line.split(" | ")[0] for line in resolved] == [
        "| ops/reporter-6c7d8e9f0a-r2p4t",
        "| shop/api-5f7b8c9d6-q4w2e",
        "| shop/cache-58d9c7b6f5-z9y8x",
    ]
    assert "its owner cache" in resolved[2]
