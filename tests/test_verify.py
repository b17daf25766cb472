"""verify: the observed requests replayed through the engine, on hand-built edges and small policies.
What passes, what drops and which side refuses it, the namespaces filter, the samples behind the
edges, and the enforcement mode."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import timedelta

import pytest

from flowgen.check.engine import HOST_UNKNOWN, Engine
from flowgen.check.verify import Drop, Verification, verify
from flowgen.cilium import Entity, Mode
from flowgen.graph.edge import Edge, Sample
from flowgen.graph.evidence import L7, L7Kind, Use
from flowgen.ingest.flow import Protocol
from flowgen.policy.model import Policy
from flowgen.policy.parsing import parse
from tests.builders import T0, cidr, edge, entity, fqdn, workload

API = workload("shop", "api")
WEB = workload("shop", "web")
DB = workload("data", "db")
WORKER = workload("data", "worker")
COREDNS = workload("kube-system", "coredns")
UDP = Protocol.UDP
LAST = T0 + timedelta(hours=2)

API_POLICY = "CiliumNetworkPolicy/shop/api"
WEB_POLICY = "CiliumNetworkPolicy/shop/web"


def policies(*documents: str) -> list[Policy]:
    """The policies of some YAML documents (which must parse cleanly: a typo must not leave a test without policy)."""
    parsed = parse("\n---\n".join(documents), "test.yaml")
    assert (len(parsed.policies), parsed.skipped, parsed.warnings) == (len(documents), [], [])
    return parsed.policies


def cnp(namespace: str, name: str, spec: str) -> str:
    """A CiliumNetworkPolicy document with `spec` (YAML, indented from column 0)."""
    body = "\n".join(f"  {line}" for line in spec.strip().splitlines())
    header = f"apiVersion: cilium.io/v2\nkind: CiliumNetworkPolicy\nmetadata: {{name: {name}, namespace: {namespace}}}"
    return f"{header}\nspec:\n{body}\n"


# The api takes 8080 from the web; the web sends 8080 to the api.
API_FROM_WEB = cnp(
    "shop",
    "api",
    """
endpointSelector: {matchLabels: {app.kubernetes.io/name: api}}
ingress:
  - fromEndpoints: [{matchLabels: {app.kubernetes.io/name: web}}]
    toPorts: [{ports: [{port: "8080", protocol: TCP}]}]
""",
)
WEB_TO_API = cnp(
    "shop",
    "web",
    """
endpointSelector: {matchLabels: {app.kubernetes.io/name: web}}
egress:
  - toEndpoints: [{matchLabels: {app.kubernetes.io/name: api}}]
    toPorts: [{ports: [{port: "8080", protocol: TCP}]}]
""",
)
DENY_WEB = """
endpointSelector: {matchLabels: {app.kubernetes.io/name: api}}
ingressDeny:
  - fromEndpoints: [{matchLabels: {app.kubernetes.io/name: web}}]
"""
API_DENIES_WEB = cnp("shop", "api", DENY_WEB)
# L7: the api takes GET /items/<number> from the web; the web may resolve names in the cluster only.
API_HTTP = cnp(
    "shop",
    "api",
    """
endpointSelector: {matchLabels: {app.kubernetes.io/name: api}}
ingress:
  - fromEndpoints: [{matchLabels: {app.kubernetes.io/name: web}}]
    toPorts:
      - ports: [{port: "8080", protocol: TCP}]
        rules: {http: [{method: GET, path: "/items/[0-9]+"}, {method: GET, path: "/static/[a-z]+"}]}
""",
)
WEB_DNS = cnp(
    "shop",
    "web",
    """
endpointSelector: {matchLabels: {app.kubernetes.io/name: web}}
egress:
  - toEndpoints: [{matchLabels: {k8s:io.kubernetes.pod.namespace: kube-system, app.kubernetes.io/name: coredns}}]
    toPorts:
      - ports: [{port: "53", protocol: UDP}]
        rules: {dns: [{matchPattern: "*.data.svc.cluster.local"}]}
  - toEndpoints: [{matchLabels: {app.kubernetes.io/name: api}}]
    toPorts: [{ports: [{port: "8080", protocol: TCP}]}]
""",
)


def replay(
    edges: list[Edge],
    documents: tuple[str, ...] = (),
    *,
    mode: Mode = Mode.DEFAULT,
    namespaces: tuple[str, ...] = (),
    samples: Mapping[tuple[object, ...], tuple[Sample, ...]] | None = None,
) -> Verification:
    return verify(edges, Engine(policies(*documents), mode=mode), namespaces, samples)


def refusals(result: Verification) -> list[tuple[str, str, int, str, tuple[str, ...]]]:
    """Each drop as (source, destination, port, L7, refusing sides)."""
    return [(d.source, d.destination, d.port, d.l7, d.refused_by) for d in result.drops]


def get(path: str, method: str = "GET", *, query: bool = False) -> L7:
    return L7(L7Kind.HTTP, method, path, query)


def lookup(name: str) -> Edge:
    return edge(WEB, COREDNS, protocol=UDP, port=53, l7=L7(L7Kind.DNS, "", name))


# --- admitted and dropped ---------------------------------------------------------


def test_an_edge_a_policy_covers_is_admitted_and_credits_the_rule() -> None:
    result = replay([edge(WEB, API, port=8080, flows=4)], (API_FROM_WEB, WEB_TO_API))
    assert (result.requests, result.flows, result.allowed_flows, result.dropped_flows) == (1, 4, 4, 0)
    assert result.drops == []
    assert result.used == {f"{API_POLICY} ingress[0]": 4, f"{WEB_POLICY} egress[0]": 4}
    assert result.warnings == []


def test_a_drop_says_what_was_refused_and_when_it_was_seen() -> None:
    result = replay([edge(WEB, API, port=9090, flows=5)], (API_FROM_WEB,))
    assert result.drops == [
        Drop(
            source="shop/web",
            destination="shop/api",
            protocol=Protocol.TCP,
            port=9090,
            l7="",
            refused_by=("ingress",),
            denied_by=(),
            flows=5,
            first=T0,
            last=LAST,
            nodes=("prod/node-a",),
            dns=False,
        )
    ]
    assert result.drops[0].example == "shop/web -> shop/api TCP/9090, first seen 2026-11-20 09:00:00 UTC on prod/node-a"
    assert (result.requests, result.flows, result.allowed_flows, result.dropped_flows) == (1, 5, 0, 5)
    assert result.used == {}


@pytest.mark.parametrize(
    ("documents", "observed", "refused_by", "denied_by"),
    [
        pytest.param((API_FROM_WEB,), edge(WEB, API, port=9090), ("ingress",), (), id="port-the-ingress-lacks"),
        pytest.param((WEB_TO_API,), edge(WEB, API, port=9090), ("egress",), (), id="port-the-egress-lacks"),
        pytest.param(
            (API_FROM_WEB, WEB_TO_API), edge(WEB, API, port=9090), ("egress", "ingress"), (), id="both-sides-refuse"
        ),
        pytest.param((API_FROM_WEB,), edge(DB, API, port=8080), ("ingress",), (), id="peer-the-ingress-lacks"),
        pytest.param(
            (API_DENIES_WEB,),
            edge(WEB, API, port=8080),
            ("ingress",),
            (f"{API_POLICY} ingressDeny[0]",),
            id="explicit-deny-is-named",
        ),
        pytest.param(
            (API_FROM_WEB, cnp("shop", "deny", DENY_WEB)),
            edge(WEB, API, port=8080),
            ("ingress",),
            ("CiliumNetworkPolicy/shop/deny ingressDeny[0]",),
            id="deny-wins-over-an-allow",
        ),
    ],
)
def test_an_edge_no_rule_allows_is_dropped_by_the_refusing_side(
    documents: tuple[str, ...], observed: Edge, refused_by: tuple[str, ...], denied_by: tuple[str, ...]
) -> None:
    result = replay([observed], documents)
    assert [(d.refused_by, d.denied_by) for d in result.drops] == [(refused_by, denied_by)]
    assert result.dropped_flows == observed.flows
    assert result.allowed_flows == 0


@pytest.mark.parametrize(
    ("documents", "observed", "allowed"),
    [
        pytest.param((), edge(WEB, cidr("198.51.100.7/32"), port=443), True, id="no-policy-no-enforcement"),
        pytest.param(
            (
                cnp(
                    "shop",
                    "web",
                    """
endpointSelector: {matchLabels: {app.kubernetes.io/name: web}}
egress: [{toCIDR: [198.51.100.0/24], toPorts: [{ports: [{port: "443", protocol: TCP}]}]}]
""",
                ),
            ),
            edge(WEB, cidr("198.51.100.7/32"), port=443),
            True,
            id="cidr-inside-the-range",
        ),
        pytest.param(
            (
                cnp(
                    "shop",
                    "web",
                    """
endpointSelector: {matchLabels: {app.kubernetes.io/name: web}}
egress: [{toCIDRSet: [{cidr: 198.51.100.0/24, except: [198.51.100.0/28]}]}]
""",
                ),
            ),
            edge(WEB, cidr("198.51.100.7/32"), port=443),
            False,
            id="cidr-in-the-except",
        ),
        pytest.param(
            (
                cnp(
                    "shop",
                    "web",
                    """
endpointSelector: {matchLabels: {app.kubernetes.io/name: web}}
egress: [{toFQDNs: [{matchPattern: "*.stripe.com"}]}]
""",
                ),
            ),
            edge(WEB, fqdn("api.stripe.com"), port=443),
            True,
            id="fqdn-by-pattern",
        ),
        pytest.param(
            (
                cnp(
                    "shop",
                    "web",
                    """
endpointSelector: {matchLabels: {app.kubernetes.io/name: web}}
egress: [{toFQDNs: [{matchName: hooks.slack.com}]}]
""",
                ),
            ),
            edge(WEB, fqdn("api.stripe.com"), port=443),
            False,
            id="fqdn-another-name",
        ),
        pytest.param(
            (
                cnp(
                    "shop",
                    "api",
                    """
endpointSelector: {matchLabels: {app.kubernetes.io/name: api}}
ingress: [{fromEntities: [world]}]
""",
                ),
            ),
            edge(entity(Entity.WORLD), API, port=8080),
            True,
            id="from-the-world-entity",
        ),
        pytest.param((API_FROM_WEB,), edge(entity(Entity.HOST), API, port=8080), True, id="host-by-allow-localhost"),
        pytest.param((API_FROM_WEB,), edge(entity(Entity.REMOTE_NODE), API, port=8080), False, id="remote-node"),
    ],
)
def test_outside_peers_and_entities(documents: tuple[str, ...], observed: Edge, allowed: bool) -> None:
    result = replay([observed], documents)
    assert result.allowed_flows == (observed.flows if allowed else 0)
    assert len(result.drops) == (0 if allowed else 1)


# --- L7 ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("observed", "dropped_l7"),
    [
        pytest.param(edge(WEB, API, port=8080, l7=get("/items/7")), None, id="http-allowed"),
        pytest.param(edge(WEB, API, port=8080, l7=get("/items/7", "POST")), "POST /items/7", id="http-other-method"),
        pytest.param(edge(WEB, API, port=8080, l7=get("/orders")), "GET /orders", id="http-other-path"),
        pytest.param(
            edge(WEB, API, port=8080, l7=get("/items/7", query=True)),
            "GET /items/7?...",
            id="http-query-the-regex-does-not-allow",
        ),
        pytest.param(
            edge(WEB, API, port=8080, l7=get("/items/{id}"), folded=True), None, id="folded-path-replayed-with-an-id"
        ),
        pytest.param(
            edge(WEB, API, port=8080, l7=get("/orders/{id}"), folded=True),
            "GET /orders/{id} (folded)",
            id="folded-path-dropped",
        ),
        pytest.param(
            edge(WEB, API, port=8080, l7=get("/static/*"), folded=True), None, id="folded-prefix-replayed-with-a-name"
        ),
        pytest.param(lookup("db.data.svc.cluster.local"), None, id="dns-name-allowed"),
        pytest.param(lookup("api.stripe.com"), "DNS api.stripe.com", id="dns-name-dropped"),
    ],
)
def test_l7_mismatch_is_dropped(observed: Edge, dropped_l7: str | None) -> None:
    result = replay([observed], (API_HTTP, WEB_DNS))
    assert [d.l7 for d in result.drops] == ([] if dropped_l7 is None else [dropped_l7])
    assert [d.dns for d in result.drops] == ([] if dropped_l7 is None else [observed.l7.kind is L7Kind.DNS])
    assert result.l7_unchecked == 0


def test_a_connection_without_l7_detail_passes_at_l4_and_is_counted_unchecked() -> None:
    result = replay([edge(WEB, API, port=8080), edge(WEB, API, port=8080, l7=get("/items/1"))], (API_HTTP, WEB_DNS))
    assert result.drops == []
    assert (result.requests, result.l7_unchecked) == (2, 1)


def test_refused_lookups_come_first() -> None:
    result = replay([edge(WEB, API, port=8080, l7=get("/orders")), lookup("api.stripe.com")], (API_HTTP, WEB_DNS))
    assert [(d.dns, d.l7) for d in result.drops] == [(True, "DNS api.stripe.com"), (False, "GET /orders")]


# --- what is replayed -------------------------------------------------------------

EVERYWHERE = [edge(WEB, API), edge(WORKER, DB), edge(WEB, DB), edge(COREDNS, entity(Entity.KUBE_APISERVER), port=443)]


@pytest.mark.parametrize(
    ("namespaces", "pairs"),
    [
        pytest.param(
            (),
            [
                ("data/worker", "data/db"),
                ("kube-system/coredns", "kube-apiserver"),
                ("shop/web", "data/db"),
                ("shop/web", "shop/api"),
            ],
            id="all-when-none-given",
        ),
        pytest.param(("shop",), [("shop/web", "data/db"), ("shop/web", "shop/api")], id="either-side-in-the-namespace"),
        pytest.param(("data",), [("data/worker", "data/db"), ("shop/web", "data/db")], id="the-other-namespace"),
        pytest.param(
            ("kube-system", "data"),
            [("data/worker", "data/db"), ("kube-system/coredns", "kube-apiserver"), ("shop/web", "data/db")],
            id="several",
        ),
        pytest.param(("billing",), [], id="nothing-there"),
    ],
)
def test_namespaces_filter_the_edges_replayed(namespaces: tuple[str, ...], pairs: list[tuple[str, str]]) -> None:
    result = replay(EVERYWHERE, mode=Mode.ALWAYS, namespaces=namespaces)
    assert [(d.source, d.destination) for d in result.drops] == pairs
    assert (result.requests, result.flows) == (len(pairs), 3 * len(pairs))


@pytest.mark.parametrize(
    ("edges", "replayed"),
    [
        pytest.param([edge(WEB, API, use=Use.ALLOWED)], 1, id="allowed"),
        pytest.param([edge(WEB, API, use=Use.AUDIT)], 1, id="audit"),
        pytest.param([edge(WEB, API, use=Use.DENIED)], 0, id="denied-is-not-evidence-for-an-allow"),
        pytest.param(
            [edge(WEB, API, delivered=False), edge(WEB, API, use=Use.DENIED)],
            0,
            id="undelivered-and-denied-at-the-destination",
        ),
        pytest.param(
            [edge(WEB, API, delivered=True), edge(WEB, API, use=Use.DENIED)], 1, id="delivered-despite-drops-stands"
        ),
        pytest.param(
            [edge(WEB, API, delivered=False), edge(WEB, API, port=9090, use=Use.DENIED)],
            1,
            id="drops-on-another-port-do-not-contradict",
        ),
    ],
)
def test_only_standing_allowed_evidence_is_replayed(edges: list[Edge], replayed: int) -> None:
    result = replay(edges, mode=Mode.ALWAYS)
    assert (result.requests, len(result.drops)) == (replayed, replayed)


# --- samples ----------------------------------------------------------------------


def hubble_labels(namespace: str, app: str, *extra: str) -> tuple[str, ...]:
    """A pod's identity labels as Hubble writes them."""
    return (
        f"k8s:app.kubernetes.io/name={app}",
        "k8s:io.cilium.k8s.policy.cluster=prod",
        f"k8s:io.cilium.k8s.policy.serviceaccount={app}",
        f"k8s:io.kubernetes.pod.namespace={namespace}",
        *extra,
    )


def sample(
    source_labels: tuple[str, ...] = (),
    destination_labels: tuple[str, ...] = (),
    *,
    destination_address: str = "",
    query: bool = False,
    events: int = 1,
    at: int = 0,
    node: str = "prod/node-a",
) -> Sample:
    first = T0 + timedelta(minutes=at)
    return Sample(
        source_labels,
        destination_labels,
        "",
        destination_address,
        query,
        events,
        first,
        first + timedelta(minutes=1),
        (node,),
        f"uuid-{at} at {first:%H:%M:%S} on {node}",
    )


# The api takes 8080 only from the web's v2 pods (`version` is volatile: the graph's peers lack it).
API_FROM_WEB_V2 = cnp(
    "shop",
    "api",
    """
endpointSelector: {matchLabels: {app.kubernetes.io/name: api}}
ingress:
  - fromEndpoints: [{matchLabels: {app.kubernetes.io/name: web, version: v2}}]
    toPorts: [{ports: [{port: "8080", protocol: TCP}]}]
""",
)
WEB_TO_CIDR = cnp(
    "shop",
    "web",
    """
endpointSelector: {matchLabels: {app.kubernetes.io/name: web}}
egress: [{toCIDR: [52.1.0.0/16]}]
""",
)


def test_samples_replay_each_workload_with_its_full_labels() -> None:
    observed = edge(WEB, API, port=8080, flows=7)
    web_v1 = hubble_labels("shop", "web", "k8s:version=v1")
    web_v2 = hubble_labels("shop", "web", "k8s:version=v2")
    api = hubble_labels("shop", "api")
    samples = {observed.key: (sample(web_v2, api, events=5, at=0), sample(web_v1, api, events=2, at=30))}

    from_edge = replay([observed], (API_FROM_WEB_V2,))
    assert [(d.flows, d.refused_by) for d in from_edge.drops] == [(7, ("ingress",))]

    from_samples = replay([observed], (API_FROM_WEB_V2,), samples=samples)
    assert (from_samples.requests, from_samples.flows, from_samples.allowed_flows) == (2, 7, 5)
    assert [(d.flows, d.first, d.example_flow) for d in from_samples.drops] == [
        (2, T0 + timedelta(minutes=30), "uuid-30 at 09:30:00 on prod/node-a")
    ]
    assert from_samples.drops[0].example == "shop/web -> shop/api TCP/8080, uuid-30 at 09:30:00 on prod/node-a"
    assert from_samples.used == {f"{API_POLICY} ingress[0]": 5}


@pytest.mark.parametrize(
    ("samples", "allowed"),
    [
        pytest.param(None, False, id="edge-alone-has-no-address"),
        pytest.param((sample(hubble_labels("shop", "web"), destination_address="52.1.2.3"),), True, id="inside"),
        pytest.param((sample(hubble_labels("shop", "web"), destination_address="9.9.9.9"),), False, id="outside"),
    ],
)
def test_samples_give_outside_peers_their_address(samples: tuple[Sample, ...] | None, allowed: bool) -> None:
    observed = edge(WEB, fqdn("api.example.com"), port=443, flows=1)
    result = replay([observed], (WEB_TO_CIDR,), samples=None if samples is None else {observed.key: samples})
    assert (result.allowed_flows, len(result.drops)) == ((1, 0) if allowed else (0, 1))


def test_samples_replayed_as_one_request_are_counted_together() -> None:
    observed = edge(WEB, API, port=9090, flows=6)
    web, api = hubble_labels("shop", "web"), hubble_labels("shop", "api")
    # A reserved label is not something an endpoint selector matches: both replay the same request.
    samples = {
        observed.key: (
            sample(web, api, events=4, at=20, node="prod/node-b"),
            sample((*web, "reserved:init"), api, events=2, at=5, node="prod/node-a"),
        )
    }
    result = replay([observed], (API_FROM_WEB,), samples=samples)
    assert result.requests == 1
    [drop] = result.drops
    assert (drop.flows, drop.first, drop.last, drop.nodes) == (
        6,
        T0 + timedelta(minutes=5),
        T0 + timedelta(minutes=21),
        ("prod/node-a", "prod/node-b"),
    )
    assert drop.example_flow == "uuid-5 at 09:05:00 on prod/node-a"


def test_samples_carry_their_own_query_string() -> None:
    observed = edge(WEB, API, port=8080, l7=get("/items/3", query=True))
    web, api = hubble_labels("shop", "web"), hubble_labels("shop", "api")
    samples = {observed.key: (sample(web, api, query=False, events=2), sample(web, api, query=True, events=1, at=1))}
    result = replay([observed], (API_HTTP,), samples=samples)
    assert (result.requests, result.allowed_flows) == (2, 2)
    assert [(d.l7, d.flows) for d in result.drops] == [("GET /items/3?...", 1)]


def test_samples_take_the_display_name_another_edge_gives() -> None:
    unnamed = edge(WEB, API, port=9090, source_workload="")
    samples = {unnamed.key: (sample(hubble_labels("shop", "web"), hubble_labels("shop", "api")),)}
    edges = [unnamed, edge(WEB, DB, port=5432, use=Use.DENIED)]
    assert [d.source for d in replay(edges, (API_FROM_WEB,)).drops] == [
        "shop/k8s:app.kubernetes.io/name=web,k8s:io.cilium.k8s.policy.serviceaccount=web"
    ]
    assert [d.source for d in replay(edges, (API_FROM_WEB,), samples=samples).drops] == ["shop/web"]


# --- enforcement mode -------------------------------------------------------------


@pytest.mark.parametrize(
    ("mode", "documents", "refused_by"),
    [
        pytest.param(Mode.DEFAULT, (), None, id="default-no-policy-allows"),
        pytest.param(Mode.DEFAULT, (API_FROM_WEB,), ("ingress",), id="default-the-selected-side-enforces"),
        pytest.param(Mode.ALWAYS, (), ("egress", "ingress"), id="always-no-policy-drops"),
        pytest.param(Mode.ALWAYS, (API_FROM_WEB,), ("egress", "ingress"), id="always-unselected-side-enforces-too"),
        pytest.param(Mode.NEVER, (API_FROM_WEB,), None, id="never-ignores-the-policies"),
        pytest.param(Mode.NEVER, (API_DENIES_WEB,), None, id="never-ignores-denies-too"),
    ],
)
def test_enforcement_mode(mode: Mode, documents: tuple[str, ...], refused_by: tuple[str, ...] | None) -> None:
    result = replay([edge(WEB, API, port=9090)], documents, mode=mode)
    assert [d.refused_by for d in result.drops] == ([] if refused_by is None else [refused_by])
    assert result.allowed_flows == (3 if refused_by is None else 0)


def test_unmodelled_policy_fields_are_warned_about() -> None:
    services = cnp(
        "shop",
        "web",
        """
endpointSelector: {matchLabels: {app.kubernetes.io/name: web}}
egress: [{toServices: [{k8sService: {serviceName: api, namespace: shop}}]}]
""",
    )
    result = replay([edge(WEB, API, port=8080), edge(WEB, DB, port=5432)], (services,))
    assert [d.refused_by for d in result.drops] == [("egress",), ("egress",)]
    assert result.warnings == [f"{WEB_POLICY}: toServices not modelled; that rule matches nothing"]


def test_a_host_rule_is_checked_against_an_unknown_host_and_says_so() -> None:
    """The evidence keeps no Host header: an HTTP rule with host: matches no replayed request.
    The drop is reported (never an optimistic pass) with a warning that it may be a false alarm."""
    by_host = cnp(
        "shop",
        "api",
        """
endpointSelector: {matchLabels: {app.kubernetes.io/name: api}}
ingress:
  - fromEndpoints: [{matchLabels: {app.kubernetes.io/name: web}}]
    toPorts: [{ports: [{port: "8080", protocol: TCP}], rules: {http: [{method: GET, host: api.shop.svc}]}}]
""",
    )
    result = replay([edge(WEB, API, port=8080, l7=get("/items"))], (by_host,))
    assert [d.refused_by for d in result.drops] == [("ingress",)]
    assert result.warnings == [HOST_UNKNOWN]
    without_host = replay([edge(WEB, API, port=8080, l7=get("/items"))], (API_FROM_WEB,))
    assert HOST_UNKNOWN not in without_host.warnings
