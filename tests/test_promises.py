"""The product's promises, as properties over generated evidence:

- every rule of the generated policies is backed by observed evidence (some
  observed request is allowed by it);
- every allowed request the policies were generated from is admitted by them
  (replayed through the offline engine);
- a request changed to something never observed (another port, method, path
  or peer) is dropped, unless a documented generalization covers it;
- the same evidence in any order, duplicated or not, gives the same policies.
"""

from __future__ import annotations

import random
from dataclasses import replace

from hypothesis import given, settings
from hypothesis import strategies as st

from flowgen.check.diff import allow_entries
from flowgen.check.engine import Engine
from flowgen.check.verify import request, verify
from flowgen.graph.edge import Edge
from flowgen.graph.evidence import L7, L7Kind
from flowgen.graph.identity import Peer, PeerKind
from flowgen.ingest.flow import Protocol
from flowgen.policy.render import dump
from flowgen.synth.synth import Options, Scope, synthesize
from tests.builders import cidr, edge, fqdn, workload

EVERYTHING = Scope.of(all_namespaces=True)

WORKLOADS = [workload(ns, app) for ns in ("shop", "data") for app in ("api", "web", "db", "worker")]
DNS_SERVER = workload("kube-system", "coredns")
OUTSIDE = [fqdn("api.stripe.com"), fqdn("hooks.slack.com"), cidr("198.51.100.7/32")]
PATHS = ["/api/v1/items", "/api/v1/items/123", "/healthz", "/orders/export"]
METHODS = ["GET", "POST", "PUT"]
TCP, UDP = Protocol.TCP, Protocol.UDP


@st.composite
def evidence(draw: st.DrawFn) -> list[Edge]:
    edges: list[Edge] = []
    for _ in range(draw(st.integers(1, 8))):
        source = draw(st.sampled_from(WORKLOADS))
        destination = draw(st.sampled_from([w for w in WORKLOADS if w != source] + OUTSIDE))
        port = draw(st.sampled_from([80, 443, 5432, 8080, 9090]))
        edges.append(edge(source, destination, protocol=TCP, port=port))
        if destination.kind is PeerKind.WORKLOAD and draw(st.booleans()):
            for _ in range(draw(st.integers(1, 3))):
                l7 = L7(L7Kind.HTTP, draw(st.sampled_from(METHODS)), draw(st.sampled_from(PATHS)), draw(st.booleans()))
                edges.append(edge(source, destination, protocol=TCP, port=port, l7=l7))
        if destination.kind is PeerKind.FQDN or draw(st.booleans()):
            names = [destination.name] if destination.kind is PeerKind.FQDN else []
            names += draw(st.lists(st.sampled_from(["db.data.svc.cluster.local", "api.shop.svc.cluster.local"])))
            edges.append(edge(source, DNS_SERVER, protocol=UDP, port=53))
            edges.extend(edge(source, DNS_SERVER, protocol=UDP, port=53, l7=L7(L7Kind.DNS, "", name)) for name in names)
    return edges


def _admitted(edges: list[Edge], probe: Edge) -> bool:
    proposal = synthesize(edges, EVERYTHING, Options())
    return Engine(proposal.policies).decide(request(probe)).allowed


@settings(max_examples=60, deadline=None)
@given(evidence())
def test_every_observed_request_is_admitted(edges: list[Edge]) -> None:
    proposal = synthesize(edges, EVERYTHING, Options())
    engine = Engine(proposal.policies)
    refused = [e for e in edges if not engine.decide(request(e)).allowed]
    assert refused == []
    assert not engine.warnings


@settings(max_examples=60, deadline=None)
@given(evidence(), st.data())
def test_unobserved_variations_are_dropped(edges: list[Edge], data: st.DataObject) -> None:
    probe = data.draw(st.sampled_from([e for e in edges if e.port != 53]))
    seen_ports = {e.port for e in edges if e.source == probe.source and e.destination == probe.destination}
    assert not _admitted(edges, replace(probe, port=max(seen_ports) + 1, l7=L7())), "another port"
    stranger = workload(probe.source.namespace, "stranger")
    if probe.destination.kind is PeerKind.WORKLOAD:
        assert not _admitted(edges, replace(probe, source=stranger)), "another peer"
    if probe.l7.kind is L7Kind.HTTP:
        seen = {
            e.l7.method
            for e in edges
            if (e.source, e.destination, e.port) == (probe.source, probe.destination, probe.port)
        }
        other = next(m for m in ("DELETE", "PATCH", "HEAD") if m not in seen)
        assert not _admitted(edges, replace(probe, l7=replace(probe.l7, method=other))), "another method"
        assert not _admitted(edges, replace(probe, l7=replace(probe.l7, path="/never/seen"))), "another path"


@settings(max_examples=30, deadline=None)
@given(evidence(), st.randoms(use_true_random=False))
def test_order_and_duplicates_do_not_change_the_policies(edges: list[Edge], rng: random.Random) -> None:
    shuffled = edges + rng.sample(edges, k=len(edges) // 2)
    rng.shuffle(shuffled)
    again, first = synthesize(shuffled, EVERYTHING, Options()), synthesize(edges, EVERYTHING, Options())
    assert again.policies == first.policies
    assert dump(again.policies) == dump(first.policies)


@settings(max_examples=60, deadline=None)
@given(evidence())
def test_every_rule_is_backed_by_evidence(edges: list[Edge]) -> None:
    proposal = synthesize(edges, EVERYTHING, Options())
    used = verify(edges, Engine(proposal.policies)).used
    rules = [name for name, _entry in allow_entries(proposal.policies, set())]
    assert rules and [name for name in rules if not used.get(name)] == []


# --- hostile evidence: nothing wider than what was named (issue #13) -----------------------

API = workload("shop", "api")
TWIN = Peer(PeerKind.WORKLOAD, cluster="prod", namespace="shop", labels=(*API.labels, "k8s:tier=x"))
BARE = workload("shop")  # no label but the default service account (field-masked, or unlabelled pods)
CRAFTED = Peer(PeerKind.WORKLOAD, cluster="prod", namespace="shop", labels=("k8s:app=bad value!",))
HOSTILE = [API, TWIN, BARE, CRAFTED, workload("data", "db"), workload("shop", "web")]
STRANGERS = [workload("shop", "stranger", serviceaccount="default"), workload("data", "stranger")]


@st.composite
def hostile_evidence(draw: st.DrawFn) -> list[Edge]:
    edges = []
    for _ in range(draw(st.integers(1, 10))):
        source, destination = draw(st.permutations(HOSTILE))[:2]
        protocol = draw(st.sampled_from([TCP, UDP, Protocol.SCTP]))
        port = draw(st.sampled_from([0, 1, 80, 8080, 65535, 65536, 70000, -1]))
        edges.append(edge(source, destination, protocol=protocol, port=port))
    return edges


@settings(max_examples=80, deadline=None)
@given(hostile_evidence())
def test_no_rule_selects_wider_peers_or_ports_than_the_evidence_named(edges: list[Edge]) -> None:
    """Every request a generated rule admits on a side its policy enforces was observed: same
    source, destination, protocol and a real port. Label-less, look-alike and crafted peers and
    port 0 or out of range never widen a rule to more pods or ports."""
    engine = Engine(synthesize(edges, EVERYTHING, Options()).policies)
    seen = {(e.source, e.destination, e.protocol, e.port) for e in edges if 1 <= e.port <= 65535}
    # The workloads known to exist (a selector is the smallest label set telling them apart), and
    # pods of the same namespaces that were never seen.
    known = sorted({p for e in edges for p in (e.source, e.destination)} | set(STRANGERS))
    for source in known:
        for destination in known:
            for protocol in (TCP, UDP, Protocol.SCTP):
                for port in (1, 80, 81, 8080, 65535):
                    probe = edge(source, destination, protocol=protocol, port=port)
                    decision = engine.decide(request(probe))
                    for side in (decision.egress, decision.ingress):
                        if side.enforced and side.allowed_by:
                            assert (source, destination, protocol, port) in seen, (side.allowed_by, probe)
