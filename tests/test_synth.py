"""The pieces of synthesis, each on a few hand-built edges: which peers are DNS servers, what
the DNS rule names, how ports, ICMP and L7 become port rules, how peers and outside clients
become entries, and which notes each piece returns. The whole (fixtures to YAML) is held by
the golden and scenario tests."""

from __future__ import annotations

import re
from collections.abc import Sequence
from datetime import timedelta
from typing import Any

import pytest

from flowgen.cilium import CLUSTER_KEY, NAMESPACE_KEY, Entity
from flowgen.graph.edge import Edge
from flowgen.graph.evidence import L7, L7Kind, Use
from flowgen.graph.identity import UNKNOWN, Peer, PeerKind
from flowgen.ingest.flow import Protocol
from flowgen.policy.model import (
    Direction,
    FQDNSelector,
    ICMPField,
    Kind,
    L4Protocol,
    L7Rules,
    Operator,
    PeerRule,
    Policy,
    PortProtocol,
    PortRule,
    Requirement,
    Selector,
)
from flowgen.synth.baseline import baselines
from flowgen.synth.context import Context, Rules
from flowgen.synth.dns import find_servers
from flowgen.synth.notes import Evidence, Note, NoteKind
from flowgen.synth.patterns import Selectors
from flowgen.synth.peers import Target, find_target, outside_ingress, peer_rules
from flowgen.synth.ports import MAX_PORTS, http_rules, port_rules
from flowgen.synth.synth import L7Mode, Options, Scope, WorldMode, survey, synthesize
from flowgen.synth.workload import egress_rules, ingress_rules, workload_policy
from tests.builders import cidr, edge, entity, fqdn, workload

EVERYTHING = Scope.of(all_namespaces=True)

API = workload("shop", "api")
WEB = workload("shop", "web")
DB = workload("data", "db")
COREDNS = workload("kube-system", "coredns")
DB_ELSEWHERE = workload("data", "db", cluster="east")
UNLABELLED = workload("shop")
UDP, TCP = Protocol.UDP, Protocol.TCP
DNS_PORTS = (PortProtocol("53", L4Protocol.UDP), PortProtocol("53", L4Protocol.TCP))


def context(edges: Sequence[Edge], **options: Any) -> Context:
    return survey(edges, Options(**options))


def lookup(source: Peer, name: str, server: Peer = COREDNS) -> Edge:
    return edge(source, server, protocol=UDP, port=53, l7=L7(L7Kind.DNS, "", name))


def get(path: str, method: str = "GET") -> L7:
    return L7(L7Kind.HTTP, method, path)


def kinds(notes: Sequence[Note]) -> list[NoteKind]:
    return sorted(note.kind for note in notes)


def shape(rules: Sequence[PortRule]) -> list[tuple[tuple[str, ...], bool]]:
    """Each port rule as its ports ("8080/TCP") and whether it carries L7 rules."""
    return [(tuple(f"{p.port}/{p.protocol}" for p in rule.ports), rule.rules is not None) for rule in rules]


# --- DNS ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("edges", "servers"),
    [
        pytest.param([edge(API, COREDNS, protocol=UDP, port=53)], {COREDNS}, id="udp-53-to-a-workload"),
        pytest.param([lookup(API, "db.data.svc.cluster.local")], {COREDNS}, id="dns-seen-at-l7"),
        pytest.param([edge(API, COREDNS, protocol=TCP, port=53)], set(), id="tcp-53-alone-is-no-evidence"),
        pytest.param([edge(API, cidr("8.8.8.8/32"), protocol=UDP, port=53)], set(), id="udp-53-outside-at-l4-only"),
        pytest.param(
            [lookup(API, "example.com", server=cidr("8.8.8.8/32"))], {cidr("8.8.8.8/32")}, id="outside-server-at-l7"
        ),
        pytest.param([edge(API, DB, port=5432)], set(), id="no-dns-traffic"),
    ],
)
def test_dns_servers_are_found_in_the_flows(edges: list[Edge], servers: set[Peer]) -> None:
    assert find_servers(edges) == servers


@pytest.mark.parametrize(
    ("edges", "names"),
    [
        pytest.param(
            [lookup(API, "db.data.svc.cluster.local"), lookup(API, "cache.data.svc.cluster.local")],
            ["cache.data.svc.cluster.local", "db.data.svc.cluster.local"],
            id="the-names-resolved",
        ),
        pytest.param(
            [lookup(API, "db.data.svc.cluster.local"), edge(API, fqdn("api.stripe.com"), port=443)],
            ["api.stripe.com", "db.data.svc.cluster.local"],
            id="plus-the-names-tofqdns-needs",
        ),
        pytest.param(
            [lookup(API, "api.stripe.com"), edge(API, fqdn("api.stripe.com"), port=443)],
            ["api.stripe.com"],
            id="a-name-both-resolved-and-reached-once",
        ),
        pytest.param(
            [lookup(API, "db.data.svc.cluster.local"), lookup(WEB, "hooks.slack.com")],
            ["db.data.svc.cluster.local"],
            id="not-what-other-workloads-resolved",
        ),
        pytest.param(
            [edge(WEB, COREDNS, protocol=UDP, port=53), edge(API, fqdn("api.stripe.com"), port=443)],
            ["api.stripe.com"],
            id="cached-answer-uses-the-servers-seen",
        ),
    ],
)
def test_dns_rule_lists_exactly_the_names_resolved_and_reached(edges: list[Edge], names: list[str]) -> None:
    ctx = context(edges)
    rules = egress_rules(ctx, API, ctx.by_source[API])
    dns = rules.entries[0]
    assert dns.endpoints == (Selector.of({"app.kubernetes.io/name": "coredns", NAMESPACE_KEY: "kube-system"}),)
    assert dns.to_ports == (PortRule(DNS_PORTS, L7Rules(dns=tuple(FQDNSelector(match_name=n) for n in names))),)


def test_tofqdns_entries_come_last_one_per_port_set() -> None:
    edges = [
        lookup(API, "api.stripe.com"),
        edge(API, fqdn("api.stripe.com"), port=443),
        edge(API, fqdn("hooks.slack.com"), port=443),
        edge(API, fqdn("ftp.example.com"), port=21),
        edge(API, DB, port=5432),
    ]
    ctx = context(edges)
    entries = egress_rules(ctx, API, ctx.by_source[API]).entries
    assert [(e.endpoints is not None, e.fqdns) for e in entries] == [
        (True, None),
        (True, None),
        (False, (FQDNSelector(match_name="api.stripe.com"), FQDNSelector(match_name="hooks.slack.com"))),
        (False, (FQDNSelector(match_name="ftp.example.com"),)),
    ]


def test_many_names_under_one_parent_collapse_with_a_note() -> None:
    edges = [lookup(API, f"host{i}.example.com") for i in range(3)]
    ctx = context(edges, dns_collapse=2)
    rules = egress_rules(ctx, API, ctx.by_source[API])
    assert rules.entries[0].to_ports == (
        PortRule(DNS_PORTS, L7Rules(dns=(FQDNSelector(match_pattern="*.example.com"),))),
    )
    assert rules.notes == (Note(NoteKind.COLLAPSED_NAMES, "shop/api", "3 names collapsed into *.example.com", 3),)


def test_dns_seen_only_at_l4_is_allowed_without_names() -> None:
    ctx = context([edge(API, COREDNS, protocol=UDP, port=53, flows=4)])
    rules = egress_rules(ctx, API, ctx.by_source[API])
    assert [e.to_ports for e in rules.entries] == [(PortRule(DNS_PORTS),)]
    assert kinds(rules.notes) == [NoteKind.DNS_NAMES_UNKNOWN]
    assert rules.notes[0].flows == 4


def test_names_without_a_dns_server_are_not_allowed() -> None:
    ctx = context([edge(API, fqdn("api.stripe.com"), port=443, flows=7)])
    policy, notes = workload_policy(ctx, API)
    assert policy is None
    assert kinds(notes) == [NoteKind.NO_DNS_SERVER]
    assert notes[0].message.startswith("traffic to api.stripe.com is NOT allowed")
    assert notes[0].flows == 7


def test_a_dns_server_answers_the_whole_cluster_on_its_dns_ports() -> None:
    prometheus = workload("monitoring", "prometheus")
    edges = [lookup(API, "a.example.com"), lookup(WEB, "b.example.com"), edge(prometheus, COREDNS, port=9153)]
    ctx = context(edges)
    rules = ingress_rules(ctx, COREDNS, ctx.by_destination[COREDNS])
    assert [(e.entities, e.to_ports) for e in rules.entries] == [
        (("cluster",), (PortRule(DNS_PORTS),)),
        (None, (PortRule((PortProtocol("9153", L4Protocol.TCP),)),)),
    ]
    assert kinds(rules.notes) == [NoteKind.DNS_SERVER]
    assert "2 clients seen (shop/api, shop/web)" in rules.notes[0].message


# --- ports, L7 and ICMP -------------------------------------------------------


@pytest.mark.parametrize(
    ("edges", "options", "expected", "notes"),
    [
        pytest.param(
            [edge(API, DB, port=8080), edge(API, DB, port=8080, l7=get("/items"))],
            {},
            [(("8080/TCP",), True)],
            [],
            id="l7-port-gets-no-l4-only-allow",
        ),
        pytest.param(
            [edge(API, DB, port=8080), edge(API, DB, port=8080, l7=get("/items"))],
            {"l7": L7Mode.NONE},
            [(("8080/TCP",), False)],
            [],
            id="l7-none-allows-at-l4",
        ),
        pytest.param(
            [edge(API, DB, port=80), edge(API, DB, port=8080, l7=get("/items"))],
            {},
            [(("80/TCP",), False), (("8080/TCP",), True)],
            [],
            id="plain-ports-first-then-l7-ports",
        ),
        pytest.param(
            [edge(API, DB, port=53, protocol=UDP), edge(API, DB, port=53), edge(API, DB, port=5432)],
            {},
            [(("53/TCP", "5432/TCP", "53/UDP"), False)],
            [],
            id="ports-to-one-peer-merge",
        ),
        pytest.param(
            [edge(API, DB, port=9092, l7=L7(L7Kind.KAFKA, "produce", "orders"))],
            {"version": (1, 19)},
            [(("9092/TCP",), True)],
            [],
            id="kafka-rules-at-1.19",
        ),
        pytest.param(
            [edge(API, DB, port=9092, l7=L7(L7Kind.KAFKA, "produce", "orders"))],
            {"version": (1, 20)},
            [(("9092/TCP",), False)],
            [NoteKind.KAFKA],
            id="kafka-omitted-at-1.20",
        ),
        pytest.param(
            [edge(API, DB, port=9092, l7=L7(L7Kind.KAFKA, "produce", "orders"))],
            {"l7": L7Mode.HTTP, "version": (1, 20)},
            [(("9092/TCP",), False)],
            [],
            id="kafka-not-asked-for",
        ),
    ],
)
def test_port_rules(
    edges: list[Edge], options: dict[str, object], expected: list[object], notes: list[NoteKind]
) -> None:
    ports = port_rules(context(edges, **options), API, DB, edges, Direction.EGRESS)
    assert shape(ports.rules) == expected
    assert kinds(ports.notes) == notes


def test_kafka_note_names_the_topics() -> None:
    edges = [
        edge(API, DB, port=9092, l7=L7(L7Kind.KAFKA, "produce", "orders"), flows=2),
        edge(API, DB, port=9092, l7=L7(L7Kind.KAFKA, "fetch", "events"), flows=3),
    ]
    ports = port_rules(context(edges, version=(1, 20)), API, DB, edges, Direction.EGRESS)
    assert ports.notes == (
        Note(
            NoteKind.KAFKA,
            "shop/api",
            "to data/db port 9092: Kafka rules were removed in Cilium 1.20; allowed at L4 only "
            "(topics seen: events, orders)",
            5,
        ),
    )


@pytest.mark.parametrize(
    ("count", "chunks"),
    [
        pytest.param(MAX_PORTS, [MAX_PORTS], id="forty-fit-one-rule"),
        pytest.param(MAX_PORTS + 1, [MAX_PORTS, 1], id="forty-one-need-two"),
        pytest.param(2 * MAX_PORTS + 5, [MAX_PORTS, MAX_PORTS, 5], id="chunks-of-forty"),
    ],
)
def test_ports_chunk_at_forty(count: int, chunks: list[int]) -> None:
    edges = [edge(API, DB, port=1000 + i) for i in range(count)]
    rules = peer_rules(context(edges), API, DB, edges, Direction.EGRESS)
    assert len(rules.entries) == 1
    to_ports = rules.entries[0].to_ports or ()
    assert [len(rule.ports) for rule in to_ports] == chunks


@pytest.mark.parametrize(
    ("edges", "expected"),
    [
        pytest.param(
            [edge(API, DB, port=5432), edge(API, DB, protocol=Protocol.ICMPv4, port=8)],
            [("to_ports", ""), ("icmps", (ICMPField(8, "IPv4"),))],
            id="icmp-in-its-own-entry",
        ),
        pytest.param(
            [edge(API, DB, protocol=Protocol.ICMPv6, port=128), edge(API, DB, protocol=Protocol.ICMPv4, port=8)],
            [("icmps", (ICMPField(8, "IPv4"), ICMPField(128, "IPv6")))],
            id="icmp-only",
        ),
    ],
)
def test_icmp_gets_its_own_entry(edges: list[Edge], expected: list[tuple[str, object]]) -> None:
    entries = peer_rules(context(edges), API, DB, edges, Direction.EGRESS).entries
    found = [("icmps", e.icmps[0]) if e.icmps else ("to_ports", "") for e in entries]
    assert found == expected
    icmp = entries[-1]
    assert icmp.to_ports is None
    assert icmp.comment.endswith(" (ICMP)")


def test_http_rules_note_folded_and_collapsed_paths() -> None:
    edges = [
        edge(API, DB, port=8080, l7=get("/a/x")),
        edge(API, DB, port=8080, l7=get("/a/y")),
        edge(API, DB, port=8080, l7=get("/a/z")),
        edge(API, DB, port=8080, l7=get("/b/{id}"), folded=True),
    ]
    rules, notes = http_rules(context(edges, path_collapse=2), API, "to data/db port 8080", edges)
    assert [rule.method for rule in rules] == ["GET", "GET"]
    assert kinds(notes) == [NoteKind.COLLAPSED_PATHS, NoteKind.FOLDED_PATHS]
    collapsed = next(note for note in notes if note.kind is NoteKind.COLLAPSED_PATHS)
    assert "/a/[^/]+" in collapsed.message and "admits any value" in collapsed.message


def test_http_rules_keep_the_class_of_folded_ids_and_read_the_legacy_placeholder() -> None:
    """`{int}` (this version) stays a number; `{id}` (a store from an older flowgen) is any id class,
    never any segment, with a note saying why."""
    edges = [
        edge(API, DB, port=8080, l7=get("/a/{int}"), folded=True),
        edge(API, DB, port=8080, l7=get("/b/{id}"), folded=True),
        edge(API, DB, port=8080, l7=get("/c/42")),
    ]
    rules, notes = http_rules(context(edges), API, "to data/db port 8080", edges)
    paths = {rule.path for rule in rules}
    assert {"/a/[0-9]+", "/c/[0-9]+"} <= paths
    (legacy,) = paths - {"/a/[0-9]+", "/c/[0-9]+"}
    assert re.fullmatch(legacy, "/b/3f2504e0-4f89-11d3-9a0c-0305e82c3301") and not re.fullmatch(legacy, "/b/admin")
    (old,) = [note for note in notes if "{id}" in note.message]
    assert "older flowgen" in old.message


# --- peers ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("peer", "direction", "options", "target"),
    [
        pytest.param(
            WEB, Direction.EGRESS, {}, Target(endpoints=(Selector.of({"app.kubernetes.io/name": "web"}),)), id="same-ns"
        ),
        pytest.param(
            DB,
            Direction.INGRESS,
            {},
            Target(endpoints=(Selector.of({"app.kubernetes.io/name": "db", NAMESPACE_KEY: "data"}),)),
            id="other-namespace",
        ),
        pytest.param(
            DB_ELSEWHERE,
            Direction.EGRESS,
            {},
            Target(
                endpoints=(Selector.of({"app.kubernetes.io/name": "db", NAMESPACE_KEY: "data", CLUSTER_KEY: "east"}),)
            ),
            id="other-cluster",
        ),
        pytest.param(
            entity(Entity.KUBE_APISERVER), Direction.EGRESS, {}, Target(entities=("kube-apiserver",)), id="entity"
        ),
        pytest.param(cidr("198.51.100.7/32"), Direction.EGRESS, {}, Target(cidrs=("198.51.100.7/32",)), id="cidr"),
        pytest.param(
            cidr("198.51.100.7/32"),
            Direction.EGRESS,
            {"world": WorldMode.ENTITY},
            Target(entities=("world",)),
            id="cidr-as-world-entity",
        ),
        pytest.param(
            cidr("198.51.100.7/32"),
            Direction.INGRESS,
            {"world": WorldMode.ENTITY},
            Target(cidrs=("198.51.100.7/32",)),
            id="world-mode-is-for-egress",
        ),
        pytest.param(UNKNOWN, Direction.EGRESS, {}, None, id="unknown"),
        pytest.param(entity(Entity.HEALTH), Direction.INGRESS, {}, None, id="health"),
    ],
)
def test_find_target(peer: Peer, direction: Direction, options: dict[str, object], target: Target | None) -> None:
    ctx = context([edge(API, peer), edge(API, WEB), edge(API, DB)], **options)
    assert find_target(ctx, API, peer, direction) == target


def test_a_target_names_one_peer_kind() -> None:
    ports = (PortRule((PortProtocol("80", L4Protocol.TCP),)),)
    rule = Target(cidrs=("198.51.100.7/32",)).rule("why", to_ports=ports)
    assert rule == PeerRule(cidrs=("198.51.100.7/32",), to_ports=ports)
    assert rule.comment == "why"


@pytest.mark.parametrize(
    ("peer", "direction", "note", "ends"),
    [
        pytest.param(
            UNKNOWN, Direction.EGRESS, NoteKind.UNKNOWN_PEER, "(the peer has no identity labels in the flows)"
        ),
        pytest.param(
            entity(Entity.HEALTH),
            Direction.INGRESS,
            NoteKind.NOT_EXPRESSED,
            "(cilium-health and init traffic are not policy material)",
        ),
        pytest.param(
            entity(Entity.UNMANAGED),
            Direction.EGRESS,
            NoteKind.NOT_EXPRESSED,
            "(this entity cannot be expressed as a peer)",
        ),
    ],
)
def test_a_peer_no_policy_can_name_becomes_a_note(peer: Peer, direction: Direction, note: NoteKind, ends: str) -> None:
    edges = [edge(API, peer, flows=4)]
    rules = peer_rules(context(edges), API, peer, edges, direction)
    assert rules.entries == ()
    assert [(n.kind, n.message.endswith(ends), n.flows) for n in rules.notes] == [(note, True, 4)]


@pytest.mark.parametrize(
    ("direction", "notes"),
    [
        pytest.param(Direction.INGRESS, [NoteKind.HOST], id="ingress-from-the-node-is-noted"),
        pytest.param(Direction.EGRESS, [], id="egress-to-the-node-is-not"),
    ],
)
def test_host_peer(direction: Direction, notes: list[NoteKind]) -> None:
    host = entity(Entity.HOST)
    edges = [edge(host, API, port=8080)]
    rules = peer_rules(context(edges), API, host, edges, direction)
    assert [e.entities for e in rules.entries] == [("host",)]
    assert kinds(rules.notes) == notes


PUBLIC = ["81.2.69.142/32", "89.160.20.112/32", "175.16.199.5/32", "216.160.83.56/32"]


@pytest.mark.parametrize(
    ("clients", "entries", "world"),
    [
        pytest.param(
            [cidr(PUBLIC[0]), cidr(PUBLIC[1])],
            [(None, (PUBLIC[0],)), (None, (PUBLIC[1],))],
            False,
            id="two-networks-stay-fromcidr",
        ),
        pytest.param([cidr(a) for a in PUBLIC[:3]], [(("world",), None)], True, id="three-networks-are-the-world"),
        pytest.param(
            [cidr(f"81.2.69.{i}/32") for i in range(10, 20)],
            [(None, (f"81.2.69.{i}/32",)) for i in range(10, 20)],
            False,
            id="many-addresses-of-one-network-stay-fromcidr",
        ),
        pytest.param(
            [cidr(f"10.{i}.0.1/32") for i in range(5)],
            [(None, (f"10.{i}.0.1/32",)) for i in range(5)],
            False,
            id="private-networks-never-make-the-world",
        ),
        pytest.param([entity(Entity.WORLD)], [(("world",), None)], True, id="no-address-is-world"),
    ],
)
def test_public_facing_ingress(clients: list[Peer], entries: list[object], world: bool) -> None:
    edges = [edge(client, API, port=443) for client in clients]
    rules = outside_ingress(context(edges), API, edges)
    assert sorted(((e.entities, e.cidrs) for e in rules.entries), key=str) == sorted(entries, key=str)
    (note,) = rules.notes
    assert note.kind is NoteKind.WORLD_INGRESS
    assert ("open population" in note.message) is world


def test_the_world_is_decided_per_port() -> None:
    public = [edge(cidr(a), API, port=443) for a in PUBLIC]
    edges = [*public, edge(cidr("198.51.100.9/32"), API, port=22)]
    rules = outside_ingress(context(edges), API, edges)
    assert [(e.entities, e.cidrs) for e in rules.entries] == [(("world",), None), (None, ("198.51.100.9/32",))]
    assert [e.to_ports[0].ports[0].port for e in rules.entries if e.to_ports] == ["443", "22"]


# --- workloads ----------------------------------------------------------------


def test_an_unusable_workload_gets_a_note_and_no_policy() -> None:
    ctx = context([edge(UNLABELLED, DB, port=5432, source_workload="batch")])
    policy, notes = workload_policy(ctx, UNLABELLED)
    assert policy is None
    assert [(n.kind, n.subject) for n in notes] == [(NoteKind.NO_LABELS, "shop/batch")]


@pytest.mark.parametrize(
    ("options", "notes"),
    [
        pytest.param({}, [NoteKind.OPEN], id="open-ingress-noted"),
        pytest.param({"default_deny": True}, [], id="default-deny-closes-it"),
        pytest.param({"min_flows": 30}, [NoteKind.OPEN, NoteKind.LITTLE_EVIDENCE], id="few-flows"),
        pytest.param({"min_span": timedelta(hours=3)}, [NoteKind.OPEN, NoteKind.LITTLE_EVIDENCE], id="short-span"),
    ],
)
def test_workload_policy_notes(options: dict[str, object], notes: list[NoteKind]) -> None:
    ctx = context([edge(API, DB, port=5432, flows=20)], **{"min_flows": 1, **options})
    policy, said = workload_policy(ctx, API)
    assert policy is not None
    assert policy.name == "flowgen-api"
    assert policy.specs[0].ingress is None
    assert kinds(said) == notes


def test_a_contradicted_edge_allows_nothing() -> None:
    sent = edge(API, DB, port=5432, delivered=False)
    dropped = edge(API, DB, port=5432, use=Use.DENIED)
    ctx = context([sent, dropped])
    assert ctx.edges == ()
    proposal = synthesize([sent, dropped], EVERYTHING)
    assert proposal.policies == ()
    assert kinds(proposal.notes) == [NoteKind.NO_ALLOWANCE, NoteKind.NO_ALLOWANCE, NoteKind.DENIED]


def test_a_delivered_edge_stands_beside_drops() -> None:
    edges = [edge(API, DB, port=5432, delivered=True), edge(API, DB, port=5432, use=Use.DENIED)]
    assert [p.name for p in synthesize(edges, EVERYTHING).policies] == ["flowgen-db", "flowgen-api"]


# --- collecting -----------------------------------------------------------------


def test_synthesize_leaves_system_namespaces_out_unless_named() -> None:
    edges = [lookup(API, "db.data.svc.cluster.local")]
    everything = synthesize(edges, EVERYTHING)
    assert [p.namespace for p in everything.policies] == ["shop"]
    assert any(n.kind is NoteKind.SYSTEM for n in everything.notes)
    assert [p.namespace for p in synthesize(edges, Scope.of(["kube-system"])).policies] == ["kube-system"]
    union = synthesize(edges, Scope.of(["kube-system"], all_namespaces=True))
    assert [p.namespace for p in union.policies] == ["kube-system", "shop"]


def _egress(policy: Policy) -> str:
    """What a baseline's egress grants: "-" (no egress section), "nothing" (`[{}]`) or "dns"."""
    egress = policy.specs[0].egress
    if egress is None:
        return "-"
    return "nothing" if egress == (PeerRule(),) else "dns"


@pytest.mark.parametrize(
    ("edges", "options", "policies", "notes"),
    [
        pytest.param(
            [edge(API, DB, port=5432)],
            {"default_deny": True},
            [(Kind.CNP, "shop", "nothing")],
            [NoteKind.NO_DNS_SERVER],
            id="no-dns-server",
        ),
        pytest.param(
            [lookup(API, "a.example.com")],
            {"default_deny": True},
            [(Kind.CNP, "shop", "nothing")],
            [],
            id="default-deny-grants-nothing",
        ),
        pytest.param(
            [lookup(API, "a.example.com")],
            {"default_deny": True, "wide_dns": True},
            [(Kind.CNP, "shop", "dns")],
            [NoteKind.WIDE_DNS],
            id="wide-dns-opt-in",
        ),
        pytest.param(
            [lookup(API, "a.example.com")],
            {"default_deny": True, "clusterwide": True},
            [(Kind.CNP, "shop", "nothing"), (Kind.CCNP, "", "-")],
            [NoteKind.HOST],
            id="clusterwide-host-only",
        ),
        pytest.param(
            [lookup(API, "a.example.com")],
            {"default_deny": True, "clusterwide": True, "wide_dns": True},
            [(Kind.CNP, "shop", "nothing"), (Kind.CCNP, "", "dns"), (Kind.CCNP, "", "-")],
            [NoteKind.HOST, NoteKind.WIDE_DNS],
            id="wide-dns-left-to-the-clusterwide-baseline",
        ),
        pytest.param(
            [edge(API, DB, port=5432)],
            {"clusterwide": True, "wide_dns": True},
            [(Kind.CCNP, "", "-")],
            [NoteKind.HOST, NoteKind.NO_DNS_SERVER],
            id="clusterwide-without-dns",
        ),
    ],
)
def test_baselines(
    edges: list[Edge], options: dict[str, object], policies: list[tuple[Kind, str, str]], notes: list[NoteKind]
) -> None:
    added, said = baselines(context(edges, **options), ["shop"])
    assert [(p.kind, p.namespace, _egress(p)) for p in added] == policies
    assert kinds(said) == notes


def test_clusterwide_baselines_need_enable_default_deny() -> None:
    with pytest.raises(ValueError, match=r"from 1\.16 on"):
        baselines(context([], clusterwide=True, version=(1, 15)), [])


def test_rules_add_in_order() -> None:
    first = Rules((PeerRule(entities=("host",)),), (Note(NoteKind.HOST, "a", "x"),))
    second = Rules((PeerRule(entities=("world",)),), (Note(NoteKind.OPEN, "b", "y"),))
    assert first + second == Rules.join([first, second])
    assert [e.entities for e in (first + second).entries] == [("host",), ("world",)]


def test_evidence_counts_an_edge_given_twice_once() -> None:
    once = edge(API, API, port=7000, flows=5)
    assert Evidence.of([once, once]).flows == 5
    assert Evidence.of([once, once]).describe() == Evidence.of([once]).describe()


def test_survey_keeps_allowed_and_audit_evidence_only() -> None:
    allowed = edge(API, DB, port=5432)
    audited = edge(WEB, DB, port=5432, use=Use.AUDIT)
    denied = edge(API, DB, port=6379, use=Use.DENIED)
    ctx = context([allowed, audited, denied])
    assert ctx.edges == (allowed, audited)
    assert ctx.by_destination[DB] == (allowed, audited)
    assert ctx.label(DB) == "data/db"
    assert ctx.label(entity(Entity.HOST)) == "host"
    assert ctx.label(Peer(PeerKind.WORKLOAD, namespace="shop", labels=("k8s:x=y",))) == "shop/k8s:x=y"


def test_every_note_kind_has_a_report_section_title() -> None:
    from flowgen.check.report import _TITLES  # noqa: PLC0415

    assert set(_TITLES) == set(NoteKind)


def test_every_namespace_in_scope_gets_its_default_deny_also_with_only_drops() -> None:
    """An attacker's debug pod whose every attempt was dropped: its namespace is the one that most
    needs a default deny, and a note says the pod is left with no allowances."""
    debug = workload("tools", "netshoot")
    edges = [edge(API, DB, port=5432), edge(debug, API, port=8080, use=Use.DENIED)]
    proposal = synthesize(edges, EVERYTHING, Options(default_deny=True))
    denies = sorted(p.namespace for p in proposal.policies if p.name == "flowgen-default-deny")
    assert denies == ["data", "shop", "tools"]
    assert [n.subject for n in proposal.notes if n.kind is NoteKind.NO_ALLOWANCE] == ["tools/netshoot"]


@pytest.mark.parametrize(
    ("protocol", "port"),
    [(Protocol.TCP, 0), (Protocol.UDP, 0), (Protocol.TCP, 70000), (Protocol.SCTP, -1), (Protocol.ICMPv4, 300)],
)
def test_a_port_no_rule_can_name_is_never_evidence(protocol: Protocol, port: int) -> None:
    """One packet to port 0 must not become `port: "0"`, which Cilium reads as every port."""
    edges = [edge(API, DB, port=5432), edge(API, DB, protocol=protocol, port=port)]
    proposal = synthesize(edges, EVERYTHING)
    ports = {
        (p.port, p.protocol)
        for policy in proposal.policies
        for spec in policy.specs
        for entry in (*(spec.egress or ()), *(spec.ingress or ()))
        for rule in entry.to_ports or ()
        for p in rule.ports
    }
    assert ports == {("5432", L4Protocol.TCP)}
    assert not any(entry.icmps for p in proposal.policies for s in p.specs for entry in (*(s.egress or ()),))
    (note,) = [n for n in proposal.notes if n.kind is NoteKind.BAD_PORT]
    assert note.subject == "data/db" and "not allowed" in note.message


def test_a_peer_without_labels_is_left_out_not_selected_by_namespace() -> None:
    """A field-masked peer (no labels but the default service account): a selector for it would
    be `{}` or namespace-only, every pod of the namespace."""
    bare = workload("shop")
    proposal = synthesize([edge(API, bare, port=8080), edge(API, DB, port=5432)], Scope.of(["shop"]))
    (api,) = proposal.policies
    selectors = [s for entry in api.specs[0].egress or () for s in entry.endpoints or ()]
    assert selectors == [Selector.of({"app.kubernetes.io/name": "db", "k8s:io.kubernetes.pod.namespace": "data"})]
    assert any(n.kind is NoteKind.NO_LABELS and "every pod of namespace shop" in n.message for n in proposal.notes)


def test_a_workload_whose_labels_another_carries_is_told_apart_by_does_not_exist() -> None:
    lone = workload("shop", "lone")
    twin = Peer(PeerKind.WORKLOAD, cluster="prod", namespace="shop", labels=(*lone.labels, "k8s:tier=x"))
    selectors = Selectors.build([lone, twin])
    assert selectors.selector(lone).match_expressions == (Requirement("tier", Operator.DOES_NOT_EXIST),)
    assert selectors.selector(twin).match_expressions == ()
