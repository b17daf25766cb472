"""A world identity that carries a pod name is a pod (issue #10, item 6).

Hubble reports some endpoints with the world identity (2, `reserved:world`) and yet a namespace and
pod name: the node's IP cache had not learned the pod's address. flowgen resolves such a pod to the
identity it has in other flows of the window (by pod name, owner, then address), across runs merged
in the store, and notes it; a pod that never shows an identity of its own gets no rule (a toCIDR for
a pod address never selects the pod) and a note.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import timedelta
from pathlib import Path

import pytest

from flowgen.cilium import Entity
from flowgen.graph.builder import GraphBuilder
from flowgen.graph.edge import Edge, ResolvedPod
from flowgen.graph.frame import Graph
from flowgen.graph.identity import Peer, PeerKind, peer_of
from flowgen.graph.store import Store
from flowgen.ingest.flow import DNS, Endpoint, Flow, L7Type, Layer7, ObservationPoint, Workload
from flowgen.policy.model import PeerRule, Policy
from flowgen.synth.notes import Note, NoteKind, Proposal
from flowgen.synth.synth import Options, Scope, WorldMode, synthesize
from tests.conftest import pod, tcp_flow

FRONTEND = pod("shop", "frontend", identity=30001)
API = pod("shop", "api", identity=30002)
REPORTER = pod("ops", "reporter", identity=30003)
LEDGER = pod("ops", "ledger", identity=30004)
EVERYTHING = Scope.of(all_namespaces=True)


def stale(of: Endpoint, pod_name: str = "") -> Endpoint:
    """`of` as a node whose IP cache has not learned it reports it: world, with namespace and pod name."""
    return Endpoint(identity=2, labels=("reserved:world",), namespace=of.namespace, pod_name=pod_name or of.pod_name)


def graph(flows: Iterable[Flow]) -> Graph:
    builder = GraphBuilder()
    builder.add_all(flows)
    return builder.graph()


def to_api(destination: Endpoint, *, at: float = 0.0, port: int = 40000, dst_ip: str = "10.0.2.20") -> Flow:
    """frontend -> api:8080 seen at the client (egress side)."""
    return tcp_flow(FRONTEND, destination, 8080, at=at, src_port=port, src_ip="10.0.1.10", dst_ip=dst_ip)


def at_api(*, at: float = 50.0, port: int = 41000) -> Flow:
    """frontend -> api:8080 seen arriving at api, with both identities."""
    return tcp_flow(
        FRONTEND,
        API,
        8080,
        at=at,
        src_port=port,
        src_ip="10.0.1.10",
        dst_ip="10.0.2.20",
        point=ObservationPoint.TO_ENDPOINT,
    )


def entries(proposal: Proposal) -> list[PeerRule]:
    found: list[PeerRule] = []
    for policy in proposal.policies:
        for rule in policy.specs:
            found += [*(rule.ingress or ()), *(rule.egress or ())]
    return found


def policy(proposal: Proposal, name: str) -> Policy:
    (found,) = [p for p in proposal.policies if p.name == name]
    return found


def selected(rules: Iterable[PeerRule]) -> list[str]:
    """The app names the entries' endpoint selectors name."""
    return sorted(
        dict(selector.match_labels).get("app.kubernetes.io/name", "?")
        for rule in rules
        for selector in rule.endpoints or ()
    )


def notes(proposal: Proposal, kind: NoteKind) -> list[Note]:
    return [note for note in proposal.notes if note.kind is kind]


def no_pod_addresses(proposal: Proposal) -> bool:
    return all(rule.cidrs is None and rule.cidr_sets is None for rule in entries(proposal))


# ---------------------------------------------------------------------------
# Who the endpoint is


def test_a_world_endpoint_with_namespace_and_pod_name_is_a_pod() -> None:
    assert peer_of(stale(API)) == Peer(PeerKind.POD, namespace="shop", name=API.pod_name)
    assert str(peer_of(stale(API))) == f"pod:shop/{API.pod_name}"
    # Without a pod name (or a namespace) it is the world, as before.
    assert peer_of(Endpoint(identity=2, labels=("reserved:world",), namespace="shop")).name == Entity.WORLD
    assert peer_of(Endpoint(identity=2, labels=("reserved:world",), pod_name="x")).name == Entity.WORLD
    assert not peer_of(stale(API)).usable


# ---------------------------------------------------------------------------
# Resolved


def test_resolved_by_pod_name_to_the_identity_the_pod_has_elsewhere() -> None:
    (edge,) = graph([to_api(stale(API)), at_api()]).edges()
    assert (edge.source, edge.destination) == (peer_of(FRONTEND), peer_of(API))
    assert edge.destination_pods == (ResolvedPod("shop", API.pod_name, "pod name"),)
    assert edge.source_pods == ()
    # Both sightings are one edge: the connections add up, the destination's name and namespace labels are api's.
    assert edge.flows == 2 and edge.destination_workload == "api"
    assert edge.destination_namespace_labels == tuple(label for label in API.labels if "namespace.labels" in label)


def test_a_world_identity_source_is_resolved_too() -> None:
    flows = [
        # At ledger's node the reporter pod is still the world ...
        tcp_flow(
            stale(REPORTER), LEDGER, 5432, src_ip="10.0.1.30", dst_ip="10.0.2.31", point=ObservationPoint.TO_ENDPOINT
        ),
        # ... its own node knows it.
        tcp_flow(REPORTER, LEDGER, 5432, at=5, src_port=40001, src_ip="10.0.1.30", dst_ip="10.0.2.31"),
    ]
    (edge,) = graph(flows).edges()
    assert edge.source == peer_of(REPORTER) and edge.source_pods == (ResolvedPod("ops", REPORTER.pod_name, "pod name"),)
    proposal = synthesize(graph(flows).edges(), EVERYTHING)
    assert selected(policy(proposal, "flowgen-ledger").specs[0].ingress or ()) == ["reporter"]
    assert no_pod_addresses(proposal)


def test_resolved_by_owner_when_the_pod_itself_never_showed_its_identity() -> None:
    """A rollout: the world-identity pod is another replica of a Deployment seen with its identity."""
    other_replica = stale(API, "api-6c8d9e7f5-r7t9y")
    (edge,) = graph([to_api(other_replica, dst_ip="10.0.2.21"), at_api()]).edges()
    assert edge.destination == peer_of(API)
    assert edge.destination_pods == (ResolvedPod("shop", "api-6c8d9e7f5-r7t9y", "owner api"),)


def test_the_owner_hubble_reports_counts_as_well_as_the_pod_name() -> None:
    owned = Endpoint(
        identity=2,
        labels=("reserved:world",),
        namespace="shop",
        pod_name="web-x1",
        workloads=(Workload(name="api", kind="Deployment"),),
    )
    (edge,) = graph([to_api(owned), at_api()]).edges()
    assert edge.destination == peer_of(API) and edge.destination_pods[0].by == "owner api"


def test_resolved_by_address_when_name_and_owner_say_nothing() -> None:
    # A field-masked capture gave the pod's identity without its pod name, at the same address.
    masked = Endpoint(identity=API.identity, namespace="shop", labels=API.labels)
    flows = [to_api(stale(API, "legacy")), tcp_flow(FRONTEND, masked, 8080, at=9, src_port=40002, dst_ip="10.0.2.20")]
    (edge,) = graph(flows).edges()
    assert edge.destination == peer_of(API)
    assert edge.destination_pods == (ResolvedPod("shop", "legacy", "address 10.0.2.20"),)


def test_the_same_address_in_another_namespace_is_another_pod() -> None:
    elsewhere = pod("billing", "api", identity=30009)
    flows = [
        to_api(stale(API, "legacy")),
        tcp_flow(FRONTEND, elsewhere, 8080, at=9, src_port=40002, dst_ip="10.0.2.20"),
    ]
    edges = graph(flows).edges()
    assert Peer(PeerKind.POD, namespace="shop", name="legacy") in {e.destination for e in edges}


def test_synthesis_names_the_workload_and_notes_the_resolution() -> None:
    proposal = synthesize(graph([to_api(stale(API)), at_api()]).edges(), EVERYTHING)
    assert no_pod_addresses(proposal)
    assert selected(policy(proposal, "flowgen-frontend").specs[0].egress or ()) == ["api"]
    assert selected(policy(proposal, "flowgen-api").specs[0].ingress or ()) == ["frontend"]
    (note,) = notes(proposal, NoteKind.WORLD_POD_RESOLVED)
    assert note.subject == f"shop/{API.pod_name}"
    assert "world identity" in note.message and "pod name" in note.message and "shop/api" in note.message


def test_notes_only_for_the_namespaces_in_scope() -> None:
    edges = graph([to_api(stale(API)), at_api()]).edges()
    assert notes(synthesize(edges, Scope.of(["other"])), NoteKind.WORLD_POD_RESOLVED) == []


def test_the_world_mode_entity_does_not_turn_a_pod_into_the_world() -> None:
    """`--world entity` writes toEntities: world for outside addresses; a pod is not one."""
    edges = graph([to_api(stale(API, "ghost-5d8f7c6b9a-q2w3e"))]).edges()
    proposal = synthesize(edges, EVERYTHING, Options(world=WorldMode.ENTITY))
    assert all(rule.entities is None for rule in entries(proposal))


# ---------------------------------------------------------------------------
# Unresolved


def test_unresolved_gets_no_rule_for_the_pod_address_and_a_note() -> None:
    ghost = stale(API, "ghost-5d8f7c6b9a-q2w3e")
    flows = [to_api(ghost, dst_ip="10.0.2.99"), at_api()]
    edges = graph(flows).edges()
    assert Peer(PeerKind.POD, namespace="shop", name="ghost-5d8f7c6b9a-q2w3e") in {e.destination for e in edges}
    assert all(e.destination_pods == () for e in edges)
    proposal = synthesize(edges, EVERYTHING)
    assert no_pod_addresses(proposal)
    # frontend keeps its rule to api, nothing for the ghost.
    assert selected(policy(proposal, "flowgen-frontend").specs[0].egress or ()) == ["api"]
    (note,) = notes(proposal, NoteKind.WORLD_POD_UNRESOLVED)
    assert note.subject == "shop/frontend"
    assert "pod shop/ghost-5d8f7c6b9a-q2w3e" in note.message and "no toCIDR" in note.message
    assert notes(proposal, NoteKind.WORLD_POD_RESOLVED) == []


def test_unresolved_as_a_source_gets_no_from_cidr() -> None:
    flows = [tcp_flow(stale(REPORTER), LEDGER, 5432, src_ip="10.0.1.30", point=ObservationPoint.TO_ENDPOINT)]
    proposal = synthesize(graph(flows).edges(), EVERYTHING)
    assert no_pod_addresses(proposal)
    assert [n.subject for n in notes(proposal, NoteKind.WORLD_POD_UNRESOLVED)] == ["ops/ledger"]


def test_an_unresolved_dns_server_gets_no_rule_and_says_why() -> None:
    coredns = Endpoint(identity=2, labels=("reserved:world",), namespace="kube-system", pod_name="coredns-5d78c9869d-a")
    lookup = Layer7(type=L7Type.REQUEST, dns=DNS(query="api.shop.svc.cluster.local.", qtypes=("A",)))
    flows = [tcp_flow(FRONTEND, coredns, 53, udp=True, l7=lookup), to_api(API, at=3)]
    proposal = synthesize(graph(flows).edges(), EVERYTHING)
    (note,) = notes(proposal, NoteKind.WORLD_POD_UNRESOLVED)
    assert note.subject == "shop/frontend" and "DNS to pod kube-system/coredns-5d78c9869d-a" in note.message
    assert no_pod_addresses(proposal) and notes(proposal, NoteKind.NO_LABELS) == []


def test_a_pod_seen_with_its_identity_only_before_the_window_is_not_used() -> None:
    early = at_api(at=0)
    late = to_api(stale(API), at=4 * 3600)
    window = graph([early, late]).since(late.time - timedelta(minutes=5) if late.time else None)
    (edge,) = window.edges()
    assert edge.destination.kind is PeerKind.POD


# ---------------------------------------------------------------------------
# Across runs: the store


def test_runs_merged_in_the_store_resolve_each_other(tmp_path: Path) -> None:
    store = Store(tmp_path)
    store.write_run("one", graph([to_api(stale(API))]), {})
    # Alone, the first run cannot tell who the pod is.
    assert store.load().graph.edges()[0].destination.kind is PeerKind.POD
    store.write_run("two", graph([at_api(at=3600)]), {})
    (edge,) = store.load().graph.edges()
    assert edge.destination == peer_of(API) and edge.flows == 2
    assert edge.destination_pods == (ResolvedPod("shop", API.pod_name, "pod name"),)
    assert (tmp_path / "pods" / "one.parquet").is_file()


def test_the_store_keeps_the_sightings_as_they_were(tmp_path: Path) -> None:
    built = graph([to_api(stale(API)), at_api()])
    Store(tmp_path).write_run("run", built, {})
    loaded = Store(tmp_path).load().graph
    assert loaded.pods.reset_index(drop=True).equals(built.pods.reset_index(drop=True))
    assert loaded.edges() == built.edges()


def test_a_store_from_before_pod_sightings_still_loads(tmp_path: Path) -> None:
    store = Store(tmp_path)
    store.write_run("old", graph([at_api()]), {})
    (tmp_path / "pods" / "old.parquet").unlink()
    loaded = store.load()
    assert loaded.problems == [] and len(loaded.graph.pods) == 0
    assert [e.destination for e in loaded.graph.edges()] == [peer_of(API)]


def test_a_damaged_sightings_file_is_reported(tmp_path: Path) -> None:
    store = Store(tmp_path)
    store.write_run("run", graph([at_api()]), {})
    (tmp_path / "pods" / "run.parquet").write_bytes(b"PAR1 torn")
    assert [path.name for path, _reason in store.load().problems] == ["run.parquet"]


# ---------------------------------------------------------------------------
# What the graph shows


@pytest.mark.parametrize("resolved", [True, False])
def test_csv_columns_do_not_change(resolved: bool) -> None:
    flows = [to_api(stale(API if resolved else Endpoint(namespace="shop", pod_name="ghost")))]
    text = graph([*flows, at_api()]).csv()
    assert text.splitlines()[0] == graph([at_api()]).csv().splitlines()[0]


def test_edges_from_the_graph_are_deterministic() -> None:
    flows = [to_api(stale(API)), at_api(), to_api(stale(API, "ghost-5d8f7c6b9a-q2w3e"), at=7, port=40003)]
    first: list[Edge] = graph(flows).edges()
    assert first == graph(reversed(flows)).edges()
