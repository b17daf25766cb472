"""Identity, flow selection and aggregation: the rules that decide what becomes evidence."""

from __future__ import annotations

import random
from datetime import timedelta
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from flowgen.graph.builder import BuildOptions, GraphBuilder
from flowgen.graph.evidence import L7, L7Kind, Skip, Use, classify, l7_of, request_direction
from flowgen.graph.folding import path_prefix, path_template
from flowgen.graph.frame import Graph
from flowgen.graph.identity import Entity, Peer, PeerKind, display_name, identity_relevant, peer_of, workload_labels
from flowgen.ingest.files import read_files
from flowgen.ingest.flow import (
    DNS,
    HTTP,
    ICMP,
    TCP,
    DropReason,
    Endpoint,
    EventType,
    Flow,
    HTTPHeader,
    Kafka,
    L7Type,
    Layer4,
    Layer7,
    ObservationPoint,
    TCPFlags,
    Verdict,
    Workload,
)
from flowgen.ingest.jsonlines import JsonLineReader
from tests.conftest import DEMO, entity, pod, tcp_flow

FRONTEND = pod("shop", "frontend")
API = pod("shop", "api")
COREDNS = pod("kube-system", "coredns", "k8s:k8s-app=kube-dns")
WORLD = entity("world", identity=2)


# --- identity ---------------------------------------------------------------


@pytest.mark.parametrize(
    ("key", "relevant"),
    [
        pytest.param("app.kubernetes.io/name", True, id="app-kubernetes-io"),
        pytest.param("app", True, id="plain-app"),
        pytest.param("io.kubernetes.pod.namespace", True, id="namespace-include-beats-ignore"),
        pytest.param("io.cilium.k8s.policy.serviceaccount", True, id="serviceaccount"),
        pytest.param("pod-template-hash", False, id="pod-template-hash"),
        pytest.param("controller-revision-hash", False, id="controller-revision-hash"),
        pytest.param("statefulset.kubernetes.io/pod-name", False, id="statefulset-pod-name"),
        pytest.param("batch.kubernetes.io/controller-uid", False, id="job-controller-uid"),
        pytest.param("kubernetes.io/hostname", False, id="kubernetes-io-prefix"),
        pytest.param("failure-domain.beta.kubernetes.io/zone", False, id="beta-anywhere"),
        pytest.param("topology.kubernetes.io/zone", False, id="topology-1.19"),
        pytest.param("job-name", True, id="job-name-is-relevant-to-cilium"),
    ],
)
def test_default_label_filter(key: str, relevant: bool) -> None:
    assert identity_relevant(key) is relevant


@pytest.mark.parametrize(
    ("one", "other"),
    [
        pytest.param(
            pod("shop", "api", "k8s:pod-template-hash=7d9c6b5f4"),
            pod("shop", "api", "k8s:pod-template-hash=5f8b7c6d9"),
            id="rollout-two-pod-template-hashes",
        ),
        pytest.param(
            pod("data", "kafka", "k8s:statefulset.kubernetes.io/pod-name=kafka-0", "k8s:controller-revision-hash=a1"),
            pod("data", "kafka", "k8s:statefulset.kubernetes.io/pod-name=kafka-2", "k8s:controller-revision-hash=b2"),
            id="statefulset-replicas",
        ),
        pytest.param(
            pod(
                "batch",
                "report",
                "k8s:job-name=report-29402880",
                "k8s:batch.kubernetes.io/job-name=report-29402880",
                "k8s:controller-uid=1111",
            ),
            pod(
                "batch",
                "report",
                "k8s:job-name=report-29402940",
                "k8s:batch.kubernetes.io/job-name=report-29402940",
                "k8s:controller-uid=2222",
            ),
            id="cronjob-runs",
        ),
        pytest.param(
            pod("shop", "api", "k8s:helm.sh/chart=api-1.2.0", "k8s:app.kubernetes.io/version=1.2.0"),
            pod("shop", "api", "k8s:helm.sh/chart=api-1.3.0", "k8s:app.kubernetes.io/version=1.3.0"),
            id="chart-upgrade",
        ),
    ],
)
def test_replicas_are_one_workload(one: Endpoint, other: Endpoint) -> None:
    assert peer_of(one) == peer_of(other)
    assert peer_of(one).kind is PeerKind.WORKLOAD


def test_workload_key_has_no_scope_or_namespace_labels() -> None:
    peer = peer_of(pod("shop", "api"))
    assert peer == Peer(
        PeerKind.WORKLOAD,
        cluster="prod",
        namespace="shop",
        labels=("k8s:app.kubernetes.io/name=api", "k8s:io.cilium.k8s.policy.serviceaccount=api"),
    )
    assert workload_labels(("k8s:io.kubernetes.pod.namespace=shop", "reserved:host")) == ()


@pytest.mark.parametrize(
    ("endpoint", "expected"),
    [
        pytest.param(entity("host", 1), Entity.HOST, id="host"),
        pytest.param(
            Endpoint(labels=("reserved:host", "reserved:kube-apiserver")), Entity.KUBE_APISERVER, id="apiserver-wins"
        ),
        pytest.param(Endpoint(identity=6), Entity.REMOTE_NODE, id="remote-node-by-number-without-labels"),
        pytest.param(entity("health", 4), Entity.HEALTH, id="health"),
        pytest.param(entity("ingress", 8), Entity.INGRESS, id="ingress"),
        pytest.param(Endpoint(labels=("reserved:world-ipv6",)), Entity.WORLD, id="world-ipv6"),
        pytest.param(Endpoint(labels=("cidr:1.2.3.0/24", "reserved:world")), Entity.WORLD, id="cidr-identity"),
    ],
)
def test_reserved_identities_become_entities(endpoint: Endpoint, expected: Entity) -> None:
    assert peer_of(endpoint) == Peer(PeerKind.ENTITY, name=expected)


def test_endpoint_without_labels_is_unknown_and_unusable() -> None:
    assert peer_of(Endpoint()).kind is PeerKind.UNKNOWN
    default_sa = Endpoint(namespace="batch", labels=("k8s:io.cilium.k8s.policy.serviceaccount=default",))
    assert peer_of(default_sa).kind is PeerKind.WORKLOAD and not peer_of(default_sa).usable
    assert peer_of(API).usable


def test_display_name_prefers_labels_then_owner_then_pod() -> None:
    assert display_name(API) == "api"
    owned = Endpoint(namespace="batch", pod_name="x-1", workloads=(Workload(name="report", kind="CronJob"),))
    assert display_name(owned) == "report"
    assert display_name(Endpoint(namespace="batch", pod_name="worker-5d78c9869d-abcde")) == "worker"


# --- which flows count --------------------------------------------------------

SYN = TCPFlags(syn=True)
SYN_ACK = TCPFlags(syn=True, ack=True)
ACK = TCPFlags(ack=True)


@pytest.mark.parametrize(
    ("flow", "expected"),
    [
        pytest.param(tcp_flow(FRONTEND, API, 8080), Use.ALLOWED, id="forwarded-request-from-endpoint"),
        pytest.param(tcp_flow(FRONTEND, API, 8080, point=ObservationPoint.TO_ENDPOINT), Use.ALLOWED, id="to-endpoint"),
        pytest.param(tcp_flow(FRONTEND, API, 8080, is_reply=True), Skip.REPLY, id="reply"),
        pytest.param(
            tcp_flow(FRONTEND, API, 8080, point=ObservationPoint.TO_STACK), Skip.DATAPATH_POINT, id="to-stack"
        ),
        pytest.param(
            tcp_flow(FRONTEND, API, 8080, point=ObservationPoint.FROM_NETWORK), Skip.DATAPATH_POINT, id="from-network"
        ),
        pytest.param(tcp_flow(FRONTEND, API, 8080, event=EventType.POLICY_VERDICT), Use.ALLOWED, id="policy-verdict"),
        pytest.param(tcp_flow(FRONTEND, API, 8080, verdict=Verdict.REDIRECTED), Use.ALLOWED, id="redirected"),
        pytest.param(tcp_flow(FRONTEND, API, 8080, verdict=Verdict.AUDIT), Use.AUDIT, id="audit"),
        pytest.param(tcp_flow(FRONTEND, API, 8080, verdict=Verdict.TRACED), Skip.NOT_A_DECISION, id="traced"),
        pytest.param(tcp_flow(FRONTEND, API, 8080, verdict=Verdict.TRANSLATED), Skip.NOT_A_DECISION, id="translated"),
        pytest.param(
            tcp_flow(
                FRONTEND,
                API,
                8080,
                verdict=Verdict.DROPPED,
                drop_reason=DropReason.POLICY_DENIED,
                is_reply=None,
                flags=SYN,
                event=EventType.DROP,
            ),
            Use.DENIED,
            id="policy-drop-syn",
        ),
        pytest.param(
            tcp_flow(
                FRONTEND,
                API,
                8080,
                verdict=Verdict.DROPPED,
                drop_reason=DropReason.POLICY_DENY,
                is_reply=None,
                event=EventType.DROP,
            ),
            Use.DENIED,
            id="explicit-deny-ports-say-request",
        ),
        pytest.param(
            tcp_flow(
                API,
                FRONTEND,
                45000,
                src_port=8080,
                verdict=Verdict.DROPPED,
                drop_reason=DropReason.POLICY_DENIED,
                is_reply=None,
                flags=ACK,
                event=EventType.DROP,
            ),
            Skip.REPLY,
            id="policy-drop-of-a-reply-by-ports",
        ),
        pytest.param(
            tcp_flow(
                FRONTEND,
                API,
                8080,
                verdict=Verdict.DROPPED,
                drop_reason=DropReason.CT_MAP_INSERTION_FAILED,
                event=EventType.DROP,
            ),
            Skip.NOT_POLICY_DROP,
            id="ct-drop",
        ),
        pytest.param(
            tcp_flow(FRONTEND, API, 40001, src_port=40000, is_reply=None), Skip.REPLY_UNKNOWN, id="undecidable"
        ),
        pytest.param(
            tcp_flow(FRONTEND, API, 8080, l7=Layer7(type=L7Type.RESPONSE, http=HTTP(code=200))),
            Skip.L7_RESPONSE,
            id="l7-response",
        ),
        pytest.param(
            tcp_flow(FRONTEND, API, 8080, l7=Layer7(type=L7Type.REQUEST, http=HTTP(method="GET", url="/"))),
            Use.ALLOWED,
            id="l7-request",
        ),
        pytest.param(
            tcp_flow(FRONTEND, API, 8080, event=EventType.TRACE_SOCK), Skip.SOCKET_TRACE, id="socket-translation"
        ),
    ],
)
def test_classify(flow: Flow, expected: Use | Skip) -> None:
    assert classify(flow) == expected


@pytest.mark.parametrize(
    ("l4", "expected"),
    [
        pytest.param(Layer4(tcp=TCP(source_port=8080, destination_port=45000, flags=SYN)), True, id="syn-opens"),
        pytest.param(Layer4(tcp=TCP(source_port=45000, destination_port=8080, flags=SYN_ACK)), False, id="syn-ack"),
        pytest.param(Layer4(tcp=TCP(source_port=45000, destination_port=443)), True, id="ephemeral-to-privileged"),
        pytest.param(Layer4(tcp=TCP(source_port=443, destination_port=45000)), False, id="privileged-to-ephemeral"),
        pytest.param(Layer4(tcp=TCP(source_port=50000, destination_port=9092)), True, id="ephemeral-to-service"),
        pytest.param(Layer4(tcp=TCP(source_port=9092, destination_port=50000)), False, id="service-to-ephemeral"),
        pytest.param(Layer4(tcp=TCP(source_port=8080, destination_port=9090)), None, id="two-service-ports"),
        pytest.param(Layer4(icmpv4=ICMP(type=8)), True, id="echo-request"),
        pytest.param(Layer4(icmpv4=ICMP(type=0)), False, id="echo-reply"),
        pytest.param(Layer4(icmpv6=ICMP(type=128)), True, id="echo6-request"),
        pytest.param(Layer4(icmpv4=ICMP(type=3)), None, id="unreachable"),
    ],
)
def test_request_direction(l4: Layer4, expected: bool | None) -> None:
    assert request_direction(Flow(l4=l4)) is expected


@pytest.mark.parametrize(
    ("l7", "expected"),
    [
        pytest.param(
            Layer7(type=L7Type.REQUEST, http=HTTP(method="get", url="http://api.shop:8080/api/v1/products/7?lang=en")),
            L7(L7Kind.HTTP, "GET", "/api/v1/products/7", query=True),
            id="http-query-split",
        ),
        pytest.param(
            Layer7(type=L7Type.REQUEST, http=HTTP(method="GET", url="http://10.0.0.2:8080")),
            L7(L7Kind.HTTP, "GET", "/"),
            id="http-empty-path",
        ),
        pytest.param(
            Layer7(
                type=L7Type.REQUEST,
                http=HTTP(method="POST", url="http://orders:9000/shop.v1.Orders/Create", protocol="HTTP/2"),
            ),
            L7(L7Kind.GRPC, "POST", "/shop.v1.Orders/Create"),
            id="grpc-by-shape",
        ),
        pytest.param(
            Layer7(
                type=L7Type.REQUEST,
                http=HTTP(
                    method="POST",
                    url="http://x/Health/Check",
                    headers=(HTTPHeader(key="content-type", value="application/grpc+proto"),),
                ),
            ),
            L7(L7Kind.GRPC, "POST", "/Health/Check"),
            id="grpc-by-content-type",
        ),
        pytest.param(
            Layer7(type=L7Type.REQUEST, http=HTTP(method="POST", url="http://x/v1.api/Create", protocol="HTTP/1.1")),
            L7(L7Kind.HTTP, "POST", "/v1.api/Create"),
            id="rest-not-grpc-over-http1",
        ),
        pytest.param(
            Layer7(type=L7Type.REQUEST, dns=DNS(query="API.Stripe.com.")),
            L7(L7Kind.DNS, "", "api.stripe.com"),
            id="dns-name",
        ),
        pytest.param(
            Layer7(type=L7Type.REQUEST, kafka=Kafka(api_key="produce", topic="orders")),
            L7(L7Kind.KAFKA, "produce", "orders"),
            id="kafka",
        ),
    ],
)
def test_l7_attribute(l7: Layer7, expected: L7) -> None:
    assert l7_of(tcp_flow(FRONTEND, API, 8080, l7=l7)) == expected


# --- aggregation --------------------------------------------------------------


def _build(flows: list[Flow], **options: object) -> GraphBuilder:
    builder = GraphBuilder(BuildOptions(**options))  # type: ignore[arg-type]
    builder.add_all(flows)
    return builder


def test_connection_seen_at_both_ends_counts_once() -> None:
    flows = [
        tcp_flow(FRONTEND, API, 8080, node="prod/node-a", point=ObservationPoint.FROM_ENDPOINT),
        tcp_flow(FRONTEND, API, 8080, at=0.001, node="prod/node-b", point=ObservationPoint.TO_ENDPOINT),
        tcp_flow(FRONTEND, API, 8080, at=0.001, node="prod/node-b", event=EventType.POLICY_VERDICT),
        # A new connection (another source port) a minute later.
        tcp_flow(FRONTEND, API, 8080, at=60, src_port=40002),
    ]
    builder = _build(flows)
    (edge,) = builder.graph().edges()
    assert (edge.flows, edge.events, edge.nodes) == (2, 4, ("prod/node-a", "prod/node-b"))
    assert builder.report.repeated == 2


def _dns_answer(client: Endpoint, name: str, ip: str, at: float, ttl: int = 30) -> Flow:
    return tcp_flow(
        COREDNS,
        client,
        40053,
        src_port=53,
        udp=True,
        at=at,
        is_reply=True,
        l7=Layer7(type=L7Type.RESPONSE, dns=DNS(query=name, ips=(ip,), ttl=ttl)),
    )


@pytest.mark.parametrize(
    ("client", "after", "expected"),
    [
        pytest.param(FRONTEND, 10, Peer(PeerKind.FQDN, name="api.stripe.com"), id="within-ttl"),
        pytest.param(FRONTEND, 36, Peer(PeerKind.CIDR, name="52.1.2.3/32"), id="after-ttl-and-grace"),
        pytest.param(API, 10, Peer(PeerKind.CIDR, name="52.1.2.3/32"), id="another-client-did-not-resolve-it"),
    ],
)
def test_world_destination_named_by_the_clients_own_dns_answer(client: Endpoint, after: float, expected: Peer) -> None:
    flows = [
        _dns_answer(FRONTEND, "api.stripe.com.", "52.1.2.3", at=0),
        tcp_flow(client, WORLD, 443, at=after, dst_ip="52.1.2.3"),
    ]
    (edge,) = _build(flows).graph().edges()
    assert edge.destination == expected


def test_world_names_from_hubble_and_world_sources_by_address() -> None:
    flows = [
        tcp_flow(FRONTEND, WORLD, 443, dst_ip="52.1.2.3", names=("api.stripe.com",)),
        tcp_flow(WORLD, FRONTEND, 3000, src_ip="203.0.113.9", dst_ip="10.0.0.1"),
        tcp_flow(FRONTEND, WORLD, 443, dst_ip="2001:db8::1", src_port=40001),
    ]
    found = {(e.source, e.destination) for e in _build(flows).graph().edges()}
    front = peer_of(FRONTEND)
    assert found == {
        (front, Peer(PeerKind.FQDN, name="api.stripe.com")),
        (Peer(PeerKind.CIDR, name="203.0.113.9/32"), front),
        (front, Peer(PeerKind.CIDR, name="2001:db8::1/128")),
    }


def test_denied_is_kept_apart_with_its_reason() -> None:
    flows = [
        tcp_flow(FRONTEND, API, 8080),
        tcp_flow(
            FRONTEND,
            API,
            8080,
            src_port=40009,
            verdict=Verdict.DROPPED,
            drop_reason=DropReason.POLICY_DENIED,
            is_reply=None,
            flags=SYN,
            event=EventType.DROP,
        ),
    ]
    found = {(e.use, e.drop_reason) for e in _build(flows).graph().edges()}
    assert found == {(Use.ALLOWED, ""), (Use.DENIED, "POLICY_DENIED")}


def _get(path: str, at: float = 0.0, src_port: int = 40000) -> Flow:
    return tcp_flow(
        FRONTEND,
        API,
        8080,
        at=at,
        src_port=src_port,
        l7=Layer7(type=L7Type.REQUEST, http=HTTP(method="GET", url=f"http://api:8080{path}")),
    )


def test_exploding_paths_are_folded_past_the_bound() -> None:
    flows = [_get(f"/api/items/{1000 + n}", at=n) for n in range(15)]
    builder = _build(flows, max_paths=10)
    http = [e for e in builder.graph().edges() if e.l7.kind is L7Kind.HTTP]
    raw = [e for e in http if not e.folded]
    folded = [e for e in http if e.folded]
    assert len(raw) == 10
    assert [(e.l7.path, e.flows) for e in folded] == [("/api/items/{int}", 5)]
    assert sum(builder.report.folded.values()) == 5


@pytest.mark.parametrize(
    ("path", "template", "prefix"),
    [
        pytest.param("/api/items/123", "/api/items/{int}", "/api/*", id="number"),
        pytest.param("/u/3f2504e0-4f89-11d3-9a0c-0305e82c3301/x", "/u/{uuid}/x", "/u/*", id="uuid"),
        pytest.param("/blob/9f86d081884c7d65", "/blob/{hex}", "/blob/*", id="hex"),
        pytest.param("/s/Zm9vYmFyYmF6cXV4MTIz/1", "/s/{token}/{int}", "/s/*", id="token"),
        pytest.param("/blob/deadbeef", "/blob/deadbeef", "/blob/*", id="word"),
        pytest.param("/healthz", "/healthz", "/healthz/*", id="plain"),
        pytest.param("/", "/", "/*", id="root"),
    ],
)
def test_path_folding_levels(path: str, template: str, prefix: str) -> None:
    assert (path_template(path), path_prefix(path)) == (template, prefix)


def test_graphs_of_parts_add_up() -> None:
    flows = list(read_files([str(DEMO)], JsonLineReader()))
    whole = _build(flows).graph()
    halves = Graph.merge([_build(flows[:200]).graph(), _build(flows[200:]).graph()])
    assert halves.edge_count() == whole.edge_count()


def test_filters_by_namespace_and_hour() -> None:
    flows = [tcp_flow(FRONTEND, API, 8080), tcp_flow(COREDNS, API, 9000, at=7200, src_port=41000)]
    graph = _build(flows).graph()
    assert {e.source.namespace for e in graph.touching(["kube-system"]).edges()} == {"kube-system"}
    late = flows[1].time
    assert late is not None
    assert graph.since(late - timedelta(minutes=30)).edge_count() == 1


def test_demo_graph_has_the_expected_shape() -> None:
    builder = _build(list(read_files([str(DEMO)], JsonLineReader())))
    found = builder.graph().edges()
    kinds = {(e.destination.kind, e.destination.name) for e in found if e.destination.kind is not PeerKind.WORKLOAD}
    assert (PeerKind.FQDN, "api.stripe.com") in kinds
    assert (PeerKind.ENTITY, "kube-apiserver") in kinds
    assert (PeerKind.CIDR, "198.51.100.7/32") in kinds
    report_jobs = {e.source for e in found if e.source.namespace == "batch"}
    assert len(report_jobs) == 1, "the CronJob's two runs are one workload"
    grpc = [e for e in found if e.l7.kind is L7Kind.GRPC]
    assert [(e.l7.method, e.l7.path) for e in grpc] == [("POST", "/shop.orders.v1.OrderService/CreateOrder")]
    assert sum(e.flows for e in found if e.use is Use.DENIED) == 2
    assert builder.report.skipped[Skip.REPLY] > 0


@settings(max_examples=40, deadline=None)
@given(st.randoms(use_true_random=False), st.integers(min_value=1, max_value=5))
def test_order_and_duplicates_do_not_change_the_graph(rng: random.Random, copies: int) -> None:
    flows = [tcp_flow(FRONTEND, API, 8080 + n % 3, at=n * 120, src_port=40000 + n) for n in range(12)]
    flows += [_get(f"/api/items/{n}", at=n * 120, src_port=41000 + n) for n in range(6)]
    reference = _build(flows).graph().edges()
    shuffled = [f for f in flows for _ in range(copies)]
    rng.shuffle(shuffled)
    again = _build(shuffled).graph().edges()
    strip = [(e.source, e.destination, e.port, e.l7, e.flows, e.first, e.last) for e in reference]
    assert [(e.source, e.destination, e.port, e.l7, e.flows, e.first, e.last) for e in again] == strip
    assert [e.events for e in again] == [e.events * copies for e in reference]


def test_host_network_pods_and_namespace_labels_are_kept() -> None:
    node_exporter = Endpoint(
        identity=1, namespace="monitoring", labels=("reserved:host",), pod_name="node-exporter-x7k2p"
    )
    builder = _build([tcp_flow(FRONTEND, node_exporter, 9100), tcp_flow(FRONTEND, API, 8080, src_port=40001)])
    found = {e.destination.kind: e for e in builder.graph().edges()}
    host = found[PeerKind.ENTITY]
    assert host.destination == Peer(PeerKind.ENTITY, name="host")
    assert host.destination_workload == "monitoring/node-exporter"
    api = found[PeerKind.WORKLOAD]
    assert api.destination_namespace_labels == ("k8s:io.cilium.k8s.namespace.labels.kubernetes.io/metadata.name=shop",)


@pytest.mark.parametrize(
    "capture",
    [DEMO, *sorted((DEMO.parent / "scenarios").glob("*.jsonl"))],
    ids=lambda path: path.stem,
)
def test_edge_count_is_the_number_of_edges(capture: Path) -> None:
    """edge_count() counts edge keys by hash instead of folding the rows: it must still say how many
    Edge values edges() gives, world-identity pods resolved included."""
    graph = _build(list(read_files([str(capture)], JsonLineReader()))).graph()
    assert graph.edge_count() == len(graph.edges()) > 0
