"""verify --probes: near-miss requests derived from the evidence (one class per test, never an
observed request), replayed against hand-written policies, and the report on the demo."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import orjson
import pytest
import yaml
from typer.testing import CliRunner

from flowgen.check.engine import Engine
from flowgen.check.nearby import PER_EDGE, PROBE_ADDRESS, PROBE_NAMESPACE, template_matches
from flowgen.check.probes import MEANINGS, Probe, ProbeClass, derive, probe_scope, replay
from flowgen.cilium import NAMESPACE_LABELS_KEY_PREFIX, Entity
from flowgen.cli import app
from flowgen.graph.edge import Edge
from flowgen.graph.evidence import GRANTING, L7, L7Kind, Use
from flowgen.graph.observed import load
from flowgen.ingest.flow import Protocol
from flowgen.policy.model import Policy
from flowgen.policy.parsing import parse
from tests.builders import cidr, edge, entity, fqdn, workload
from tests.conftest import DEMO

FRONT = workload("shop", "frontend")
API = workload("shop", "api")
ORDERS = workload("shop", "orders")
PAYMENTS = workload("shop", "payments")
KAFKA = workload("data", "kafka")
COREDNS = workload("kube-system", "coredns")
PROM = workload("monitoring", "prometheus")

runner = CliRunner()


def http(method: str, path: str, *, query: bool = False) -> L7:
    return L7(L7Kind.HTTP, method, path, query)


def dns(name: str) -> L7:
    return L7(L7Kind.DNS, "", name)


def kafka(key: str, topic: str) -> L7:
    return L7(L7Kind.KAFKA, key, topic)


def of(kind: ProbeClass, probes: list[Probe]) -> list[Probe]:
    return [p for p in probes if p.kind is kind]


def ports(probes: list[Probe]) -> set[tuple[str, int]]:
    return {(p.protocol, p.port) for p in probes}


def paths(probes: list[Probe]) -> set[tuple[str, str]]:
    return {(p.l7.method, p.l7.path) for p in probes}


# ---------------------------------------------------------------------------
# deriving: each class from a crafted edge, never what was observed


def test_other_port_tries_the_next_port_and_admin_ports_but_no_observed_one() -> None:
    edges = [edge(FRONT, API, port=8080), edge(FRONT, API, port=8081), edge(FRONT, API, port=22, use=Use.DENIED)]
    probes = of(ProbeClass.OTHER_PORT, derive(edges))
    assert ports(probes) == {("TCP", 8082), ("TCP", 22), ("TCP", 2379), ("TCP", 6443), ("TCP", 8443)}
    # A denied attempt is no evidence for an allow: TCP/22 stays a probe.
    assert all(p.source == FRONT and p.destination == API and p.l7.kind is L7Kind.NONE for p in probes)
    assert probes[0].near.startswith("shop/frontend -> shop/api TCP/")


def test_other_method_tries_delete_and_put_where_they_were_not_seen() -> None:
    edges = [
        edge(FRONT, API, port=8080, l7=http("GET", "/api/v1/orders/17")),
        edge(FRONT, API, port=8080, l7=http("DELETE", "/api/v1/orders/17")),
    ]
    probes = of(ProbeClass.OTHER_METHOD, derive(edges))
    assert paths(probes) == {("PUT", "/api/v1/orders/17")}


def test_sibling_path_tries_literal_words_beside_and_below_an_observed_path() -> None:
    edges = [
        edge(FRONT, API, port=8080, l7=http("GET", "/api/v1/orders/17", query=True)),
        edge(FRONT, API, port=8080, l7=http("GET", "/api/v1/orders/18", query=True)),
        edge(FRONT, API, port=8080, l7=http("GET", "/api/v1/orders/export")),
    ]
    probes = of(ProbeClass.SIBLING_PATH, derive(edges))
    found = {p.l7.path for p in probes}
    # Ids of one template are probed once; the observed literal `export` is not a probe.
    assert found == {
        "/api/v1/orders/admin",
        "/api/v1/orders/debug",
        "/api/v1/orders/internal",
        "/api/v1/orders/17/export",
        "/api/v1/orders/export/export",
    }
    assert all(p.l7.method == "GET" for p in probes)


def test_sibling_path_of_a_grpc_method_is_another_method_of_the_service() -> None:
    grpc = L7(L7Kind.GRPC, "POST", "/shop.orders.v1.OrderService/CreateOrder")
    probes = of(ProbeClass.SIBLING_PATH, derive([edge(API, ORDERS, port=9000, l7=grpc)]))
    assert "/shop.orders.v1.OrderService/Admin" in {p.l7.path for p in probes}
    assert of(ProbeClass.OTHER_METHOD, derive([edge(API, ORDERS, port=9000, l7=grpc)])) == []


def test_a_folded_path_covers_what_it_stands_for() -> None:
    assert template_matches("/api/v1/orders/{id}", "/api/v1/orders/17")
    assert template_matches("/api/v1/orders/{int}", "/api/v1/orders/17")
    assert not template_matches("/api/v1/orders/{id}", "/api/v1/orders/export")
    assert template_matches("/api/*", "/api/admin/debug") and template_matches("/api/*", "/api")
    assert not template_matches("/api/*", "/admin")
    folded = edge(FRONT, API, port=8080, l7=http("GET", "/api/*"), folded=True)
    assert of(ProbeClass.SIBLING_PATH, derive([folded])) == []


def test_unlisted_dns_tries_an_exfiltration_name_and_a_sibling_of_a_resolved_one() -> None:
    edges = [
        edge(API, COREDNS, protocol=Protocol.UDP, port=53),
        edge(API, COREDNS, protocol=Protocol.UDP, port=53, l7=dns("api.stripe.com")),
        edge(FRONT, COREDNS, protocol=Protocol.UDP, port=53, l7=dns("shop.example.org")),
        edge(FRONT, COREDNS, protocol=Protocol.UDP, port=53, l7=dns("admin.example.org")),
        # CoreDNS forwards what its clients ask: it is not probed for names.
        edge(COREDNS, cidr("192.0.2.53/32"), protocol=Protocol.UDP, port=53),
    ]
    probes = of(ProbeClass.UNLISTED_DNS, derive(edges))
    names = {(p.source, p.l7.path) for p in probes}
    # frontend resolved admin.example.org itself: that sibling is no probe for it.
    assert names == {
        (API, "exfil-1.attacker.example"),
        (API, "admin.stripe.com"),
        (FRONT, "exfil-1.attacker.example"),
    }
    assert all(p.protocol == "UDP" and p.port == 53 and p.destination == COREDNS for p in probes)
    assert COREDNS in {p.source for p in of(ProbeClass.OTHER_PORT, derive(edges))}


def test_unlisted_fqdn_and_address_are_outside_destinations_never_reached() -> None:
    edges = [
        edge(API, fqdn("api.stripe.com"), port=443),
        edge(PAYMENTS, cidr("198.51.100.7/32"), port=8443),
    ]
    probes = derive(edges)
    fqdns = of(ProbeClass.UNLISTED_FQDN, probes)
    assert {(p.destination_name, p.port) for p in fqdns} == {
        ("exfil-1.attacker.example", 443),
        ("admin.stripe.com", 443),
    }
    assert all(p.request.destination.world and p.request.destination.names for p in fqdns)
    (address,) = of(ProbeClass.UNLISTED_ADDRESS, probes)
    assert (address.source, address.request.destination.ip, address.port) == (PAYMENTS, PROBE_ADDRESS, 8443)


def test_kafka_other_topic_and_other_role() -> None:
    edges = [
        edge(ORDERS, KAFKA, port=9092, l7=kafka("produce", "orders")),
        edge(ORDERS, KAFKA, port=9092, l7=kafka("joingroup", "")),
        edge(PAYMENTS, KAFKA, port=9092, l7=kafka("fetch", "payments")),
        edge(PAYMENTS, KAFKA, port=9092, l7=kafka("produce", "payments")),
    ]
    probes = derive(edges)
    topics = {(p.source, p.l7.method, p.l7.path) for p in of(ProbeClass.OTHER_TOPIC, probes)}
    # Another client's topic first, then a made-up one; requests without a topic are not varied.
    assert topics == {
        (ORDERS, "produce", "payments"),
        (ORDERS, "produce", "flowgen-probe"),
        (PAYMENTS, "fetch", "orders"),
        (PAYMENTS, "fetch", "flowgen-probe"),
        (PAYMENTS, "produce", "orders"),
        (PAYMENTS, "produce", "flowgen-probe"),
    }
    roles = {(p.source, p.l7.method, p.l7.path) for p in of(ProbeClass.OTHER_ROLE, probes)}
    # payments does both on its topic: no other-role probe for it.
    assert roles == {(ORDERS, "fetch", "orders")}


def test_impostor_pods_another_namespace_and_an_unrelated_pod() -> None:
    edges = [
        edge(FRONT, API, port=8080, l7=http("GET", "/api/v1/products")),
        edge(API, COREDNS, protocol=Protocol.UDP, port=53, l7=dns("api.stripe.com")),
    ]
    probes = derive(edges)
    (elsewhere,) = of(ProbeClass.OTHER_NAMESPACE_POD, probes)
    assert elsewhere.request.source.namespace == PROBE_NAMESPACE
    assert ("k8s:app.kubernetes.io/name", "frontend") in elsewhere.request.source.labels
    assert (elsewhere.destination, elsewhere.l7.path) == (API, "/api/v1/products")
    unrelated = of(ProbeClass.UNRELATED_POD, probes)
    assert {p.destination for p in unrelated} == {API, COREDNS}
    for probe in unrelated:
        assert probe.request.source.namespace == "shop"
        assert ("k8s:app.kubernetes.io/name", "flowgen-probe") in probe.request.source.labels


def test_world_and_remote_node_to_ports_only_seen_from_inside() -> None:
    edges = [
        edge(FRONT, API, port=8080),
        edge(cidr("203.0.113.50/32"), FRONT, port=3000),
        edge(entity(Entity.KUBE_APISERVER), API, port=9443),
        edge(entity(Entity.HOST), API, port=8081, l7=http("GET", "/healthz")),
    ]
    probes = of(ProbeClass.WORLD_TO_INTERNAL, derive(edges))
    found = {(p.source_name.split()[0], p.destination, p.port) for p in probes}
    assert found == {
        ("world", API, 8080),
        ("remote-node", API, 8080),
        # The API server can arrive as remote-node: only the world probe for a webhook port.
        ("world", API, 9443),
        ("world", API, 8081),
        ("remote-node", API, 8081),
    }
    # A port seen from the world is open to it: no probe.
    assert FRONT not in {p.destination for p in probes}


def test_system_pods_to_the_world_when_their_namespace_is_in_scope() -> None:
    edges = [edge(API, COREDNS, protocol=Protocol.UDP, port=53, l7=dns("api.stripe.com"))]
    probes = of(ProbeClass.SYSTEM_TO_WORLD, derive(edges))
    assert {(p.source, p.request.destination.ip, p.port) for p in probes} == {
        (COREDNS, PROBE_ADDRESS, 443),
        (COREDNS, PROBE_ADDRESS, 80),
    }
    assert of(ProbeClass.SYSTEM_TO_WORLD, derive(edges, scope=frozenset({"shop"}))) == []


def test_nothing_from_the_node_is_probed() -> None:
    probes = derive([edge(entity(Entity.HOST), API, port=8080)])
    assert all(p.source != entity(Entity.HOST) for p in probes)


def test_scope_leaves_out_system_namespaces_no_policy_is_in() -> None:
    edges = [edge(API, COREDNS, protocol=Protocol.UDP, port=53), edge(PROM, API, port=9090)]
    assert probe_scope(edges, []) == (frozenset({"shop", "monitoring"}), ("kube-system",))
    coredns = _policies("""
apiVersion: cilium.io/v2
kind: CiliumNetworkPolicy
metadata: {name: coredns, namespace: kube-system}
spec:
  endpointSelector: {matchLabels: {app.kubernetes.io/name: coredns}}
  ingress: [{fromEntities: [cluster]}]
""")
    assert probe_scope(edges, coredns) == (frozenset({"shop", "monitoring", "kube-system"}), ())
    assert probe_scope(edges, [], ["monitoring"]) == (frozenset({"monitoring"}), ())


def _observed(edges: list[Edge], probe: Probe) -> bool:
    """Whether a granted edge is the probe itself (same peers, port, and L7 when it has one)."""
    for e in edges:
        if e.use not in GRANTING or (e.source, e.destination, e.protocol, e.port) != (
            probe.source,
            probe.destination,
            probe.protocol,
            probe.port,
        ):
            continue
        if probe.l7.kind is L7Kind.NONE or (e.l7.kind, e.l7.method, e.l7.path) == (
            probe.l7.kind,
            probe.l7.method,
            probe.l7.path,
        ):
            return True
    return False


def test_on_the_demo_no_probe_is_observed_and_counts_stay_bounded() -> None:
    evidence = load([str(DEMO)], Path("/nonexistent"), None, warn=lambda _m: None, samples=True)
    edges = evidence.edges()
    probes = derive(edges, evidence.samples)
    assert len(probes) < 400
    assert not [p.example for p in probes if _observed(edges, p)]
    assert len({(p.kind, p.request) for p in probes}) == len(probes)
    per_edge = Counter((p.kind, p.near) for p in probes)
    assert max(per_edge.values()) <= PER_EDGE
    assert {p.kind for p in probes} >= set(ProbeClass) - {ProbeClass.SYSTEM_TO_WORLD}
    # From flows, each pod side carries its full identity labels, its namespace's labels included.
    pods = [p.request.source for p in of(ProbeClass.OTHER_PORT, probes) if p.request.source.is_pod]
    assert pods and all(any(k.startswith(NAMESPACE_LABELS_KEY_PREFIX) for k, _v in pod.labels) for pod in pods)


# ---------------------------------------------------------------------------
# replaying against hand-written policies


def _policies(text: str) -> list[Policy]:
    return list(parse(text, "test.yaml").policies)


API_INGRESS = """
apiVersion: cilium.io/v2
kind: CiliumNetworkPolicy
metadata: {{name: api, namespace: shop}}
spec:
  endpointSelector: {{matchLabels: {{app.kubernetes.io/name: api}}}}
  ingress:
  - fromEndpoints: [{{matchLabels: {{app.kubernetes.io/name: frontend}}}}]
{ports}
"""


def _leaks(edges: list[Edge], text: str) -> dict[ProbeClass, set[str]]:
    report = replay(derive(edges), Engine(_policies(text)))
    found: dict[ProbeClass, set[str]] = {}
    for leak in report.allowed:
        found.setdefault(leak.probe.kind, set()).add(f"{leak.probe.protocol}/{leak.probe.port} {leak.probe.l7.path}")
    return found


def test_to_ports_on_one_port_denies_the_other_port_probes() -> None:
    edges = [edge(FRONT, API, port=8080)]
    narrow = API_INGRESS.format(ports="    toPorts: [{ports: [{port: '8080', protocol: TCP}]}]")
    assert ProbeClass.OTHER_PORT not in _leaks(edges, narrow)
    # Without toPorts every port is open to the frontend: each other-port probe gets through.
    wide = _leaks(edges, API_INGRESS.format(ports=""))
    assert wide[ProbeClass.OTHER_PORT] == {"TCP/8081 ", "TCP/22 ", "TCP/2379 ", "TCP/6443 ", "TCP/8443 "}


def _http_rule(path: str) -> str:
    return (
        "    toPorts:\n"
        "    - ports: [{port: '8080', protocol: TCP}]\n"
        f"      rules: {{http: [{{method: GET, path: '{path}'}}]}}"
    )


def test_any_segment_path_allows_a_sibling_literal_and_an_id_class_does_not() -> None:
    edges = [edge(FRONT, API, port=8080, l7=http("GET", "/api/v1/orders/17"))]
    loose = _leaks(edges, API_INGRESS.format(ports=_http_rule("/api/v1/orders/[^/]+")))
    assert "TCP/8080 /api/v1/orders/export" in loose[ProbeClass.SIBLING_PATH]
    assert "TCP/8080 /api/v1/orders/admin" in loose[ProbeClass.SIBLING_PATH]
    assert "TCP/8080 /api/v1/orders/17/export" not in loose[ProbeClass.SIBLING_PATH]
    assert ProbeClass.OTHER_METHOD not in loose
    tight = _leaks(edges, API_INGRESS.format(ports=_http_rule("/api/v1/orders/[0-9]+")))
    assert ProbeClass.SIBLING_PATH not in tight


def test_cluster_wide_ingress_lets_impostors_and_other_nodes_in() -> None:
    edges = [edge(FRONT, API, port=8080)]
    text = """
apiVersion: cilium.io/v2
kind: CiliumNetworkPolicy
metadata: {name: api, namespace: shop}
spec:
  endpointSelector: {matchLabels: {app.kubernetes.io/name: api}}
  ingress:
  - fromEntities: [cluster]
    toPorts: [{ports: [{port: '8080', protocol: TCP}]}]
"""
    report = replay(derive(edges), Engine(_policies(text)))
    leaked = {leak.probe.kind for leak in report.allowed}
    assert leaked == {ProbeClass.OTHER_NAMESPACE_POD, ProbeClass.UNRELATED_POD, ProbeClass.WORLD_TO_INTERNAL}
    (node,) = report.leaks(ProbeClass.WORLD_TO_INTERNAL)
    assert node.probe.source_name == "remote-node" and node.allowed_by == ("CiliumNetworkPolicy/shop/api ingress[0]",)
    assert report.total == sum(report.probes.values()) and report.probes[ProbeClass.OTHER_PORT] == 5


def test_wide_dns_rule_lets_unlisted_names_through() -> None:
    edges = [edge(API, COREDNS, protocol=Protocol.UDP, port=53, l7=dns("api.stripe.com"))]
    rule = """
apiVersion: cilium.io/v2
kind: CiliumNetworkPolicy
metadata: {{name: api, namespace: shop}}
spec:
  endpointSelector: {{matchLabels: {{app.kubernetes.io/name: api}}}}
  egress:
  - toEndpoints: [{{matchLabels: {{app.kubernetes.io/name: coredns, k8s:io.kubernetes.pod.namespace: kube-system}}}}]
    toPorts: [{{ports: [{{port: '53', protocol: UDP}}], rules: {{dns: [{{{dns}}}]}}}}]
"""
    narrow = _leaks(edges, rule.format(dns="matchName: api.stripe.com"))
    assert ProbeClass.UNLISTED_DNS not in narrow
    wide = _leaks(edges, rule.format(dns="matchPattern: '*'"))
    assert wide[ProbeClass.UNLISTED_DNS] == {"UDP/53 exfil-1.attacker.example", "UDP/53 admin.stripe.com"}


# ---------------------------------------------------------------------------
# the command on the demo


def _generate(tmp_path: Path) -> Path:
    out = tmp_path / "policies"
    result = runner.invoke(app, ["generate", "-A", "--default-deny", "-i", str(DEMO), "-d", str(out)])
    assert result.exit_code == 0, result.output
    return out


def _probe_json(folder: Path, *args: str) -> tuple[int, dict[str, object]]:
    result = runner.invoke(app, ["verify", "--probes", "-p", str(folder), "-i", str(DEMO), "-o", "json", *args])
    assert result.exit_code in (0, 1), result.output
    return result.exit_code, orjson.loads(result.stdout)


def _consistent(report: dict[str, object]) -> list[dict[str, object]]:
    classes = report["classes"]
    assert isinstance(classes, list)
    assert [c["class"] for c in classes] == [str(k) for k in ProbeClass]
    assert all(c["meaning"] == MEANINGS[ProbeClass(c["class"])] for c in classes)
    assert sum(c["probes"] for c in classes) == report["probes"]
    assert sum(c["allowed"] for c in classes) == report["allowed"]
    allowed = report["allowed_probes"]
    assert isinstance(allowed, list)
    assert len(allowed) == report["allowed"]
    assert isinstance(report["probes"], int) and isinstance(report["allowed"], int)
    assert 0 <= report["allowed"] <= report["probes"]
    for leak in allowed:
        assert leak["class"] in {str(k) for k in ProbeClass}
        assert leak["example"] and leak["near"] and leak["source"] and leak["destination"]
    for c in classes:
        assert c["allowed"] <= c["probes"]
        assert c["examples"] == [leak["example"] for leak in allowed if leak["class"] == c["class"]][:5]
    return allowed


def test_probe_report_on_the_demos_own_policies_is_consistent(tmp_path: Path) -> None:
    out = _generate(tmp_path)
    code, report = _probe_json(out, "--exit-code")
    _consistent(report)
    assert code == (1 if report["allowed"] else 0)
    assert report["policies"] == len([p for p in out.glob("*.yaml") if p.name != "kustomization.yaml"])
    assert report["not_probed"] == ["kube-system"] and "shop" in report["namespaces"]
    observed = report["observed"]
    assert isinstance(observed, dict) and observed["requests"] > 30
    assert isinstance(report["probes"], int) and report["probes"] > 100


def _widen(folder: Path) -> None:
    """Open frontend -> api to any port and path on both sides: the holes probes must find."""
    for name, section, peer, needle in (
        ("shop.flowgen-api.yaml", "ingress", "fromEndpoints", "frontend"),
        ("shop.flowgen-frontend.yaml", "egress", "toEndpoints", "'api'"),
    ):
        path = folder / name
        document = yaml.safe_load(path.read_text())
        for rule in document["spec"][section]:
            if needle in str(rule.get(peer)):
                rule.pop("toPorts")
        path.write_text(yaml.safe_dump(document))


def test_holes_put_into_the_demos_policies_show_up_as_allowed(tmp_path: Path) -> None:
    out = _generate(tmp_path)
    _widen(out)
    code, report = _probe_json(out, "--exit-code")
    assert code == 1
    allowed = _consistent(report)
    leaked = {(leak["class"], leak["destination"], leak["port"], leak["l7"]) for leak in allowed}
    assert ("other-port", "shop/api", 22, None) in leaked
    assert ("sibling-path", "shop/api", 8080, "GET /api/v1/products/export?...") in leaked
    assert ("other-method", "shop/api", 8080, "DELETE /api/v1/cart/items") in leaked
    classes = report["classes"]
    assert isinstance(classes, list)
    sibling = next(c for c in classes if c["class"] == "sibling-path")
    assert sibling["allowed"] >= 4 and sibling["examples"]


@pytest.mark.parametrize("fmt", ["text", "markdown"])
def test_probe_report_as_text_and_markdown(tmp_path: Path, fmt: str) -> None:
    out = _generate(tmp_path)
    _widen(out)
    result = runner.invoke(app, ["verify", "--probes", "-p", str(out), "-i", str(DEMO), "-o", fmt])
    assert result.exit_code == 0, result.output
    text = result.stdout
    assert "near-miss requests no evidence supports" in text
    assert "Not probed: kube-system" in text
    if fmt == "markdown":
        assert text.startswith("# flowgen verify --probes\n")
        assert "| class | what it tries | probes | allowed |" in text and "## other-port:" in text
    else:
        assert "Allowed probes, by class:" in text and "  other-port (" in text
