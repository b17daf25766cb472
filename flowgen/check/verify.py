"""Replay observed requests against a policy set: what would it drop?

Each allowed (or audit) edge of the graph becomes requests for the engine. When
the graph was built from flows, those are the edge's samples (flowgen.graph.edge.
Sample): each workload with its full identity labels, each outside peer with its
address, counted per sample. From the store, the edge itself is replayed with its
counts: workloads are matched by their stable identity labels (see
flowgen.graph.identity; labels dropped as volatile, such as `version` or
`job-name`, are not there to match), outside destinations by the DNS name or
address the graph recorded. Either way, HTTP paths with a query string are
replayed as `path?`, and folded paths with a sample id of its class in place of a
placeholder (`{int}`, `{uuid}`, ...).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime

from flowgen.check.engine import Decision, Engine, L7Request, Party, Request
from flowgen.cilium import CLUSTER_KEY, NAMESPACE_KEY, Entity
from flowgen.graph.edge import Edge, Sample, settle
from flowgen.graph.evidence import GRANTING, L7Kind
from flowgen.graph.folding import REST_PLACEHOLDER, placeholder_sample
from flowgen.graph.identity import Peer, PeerKind, split_label

# Stands in for a trailing `*` of folded paths when they are replayed.
SAMPLE_REST = "x"


def party(peer: Peer, namespace_labels: tuple[str, ...] = ()) -> Party:
    """How the engine sees a graph peer (with its namespace's labels, for namespace-label selectors)."""
    if peer.kind is PeerKind.WORKLOAD:
        labels = []
        for label in (*peer.labels, *namespace_labels):
            source, key, value = split_label(label)
            labels.append((f"{source or 'k8s'}:{key}", value))
        labels.append((NAMESPACE_KEY, peer.namespace))
        if peer.cluster:
            labels.append((CLUSTER_KEY, peer.cluster))
        return Party(tuple(sorted(labels)))
    if peer.kind is PeerKind.ENTITY:
        if peer.name == Entity.WORLD:
            return Party(world=True)
        return Party(((f"reserved:{peer.name}", ""),))
    if peer.kind is PeerKind.CIDR:
        return Party(ip=peer.name.split("/", 1)[0], world=True)
    if peer.kind is PeerKind.FQDN:
        return Party(names=(peer.name,), world=True)
    return Party()


def _path(edge: Edge) -> str:
    path = edge.l7.path
    if edge.folded:
        segments = [placeholder_sample(s) or s for s in path.split("/")]
        if segments and segments[-1] == REST_PLACEHOLDER:
            segments[-1] = SAMPLE_REST
        path = "/".join(segments)
    return path + ("?" if edge.l7.query else "")


def request(edge: Edge) -> Request:
    kind = edge.l7.kind
    if kind in (L7Kind.HTTP, L7Kind.GRPC):
        l7 = L7Request(L7Kind.HTTP, method=edge.l7.method, path=_path(edge))
    elif kind is L7Kind.DNS:
        l7 = L7Request(L7Kind.DNS, name=edge.l7.path)
    elif kind is L7Kind.KAFKA:
        l7 = L7Request(L7Kind.KAFKA, method=edge.l7.method, topic=edge.l7.path)
    else:
        l7 = L7Request()
    source = party(edge.source, edge.source_namespace_labels)
    destination = party(edge.destination, edge.destination_namespace_labels)
    return Request(source, destination, edge.protocol, edge.port, l7)


def describe_l7(edge: Edge) -> str:
    if edge.l7.kind is L7Kind.NONE:
        return ""
    if edge.l7.kind is L7Kind.DNS:
        return f"DNS {edge.l7.path}"
    if edge.l7.kind is L7Kind.KAFKA:
        return f"Kafka {edge.l7.method} {edge.l7.path}"
    return f"{edge.l7.method} {edge.l7.path}{'?...' if edge.l7.query else ''}{' (folded)' if edge.folded else ''}"


@dataclass(frozen=True, slots=True)
class Drop:
    """An observed request the policies would drop, with who refuses it and why."""

    source: str
    destination: str
    protocol: str
    port: int
    l7: str
    # "egress" (the source may not send it), "ingress" (the destination may not take it) or both.
    refused_by: tuple[str, ...]
    # Explicit deny rules that match it (empty: no allow rule matched).
    denied_by: tuple[str, ...]
    flows: int
    first: datetime
    last: datetime
    nodes: tuple[str, ...]
    # A DNS lookup: when it is refused, names behind toFQDNs rules stop resolving.
    dns: bool
    # One real flow behind it, when replayed from flows (uuid, time, node).
    example_flow: str = ""

    @property
    def example(self) -> str:
        where = f" on {self.nodes[0]}" if self.nodes else ""
        what = f" {self.l7}" if self.l7 else ""
        seen = self.example_flow or f"first seen {self.first:%Y-%m-%d %H:%M:%S} UTC{where}"
        return f"{self.source} -> {self.destination} {self.protocol}/{self.port}{what}, {seen}"


@dataclass
class Verification:
    requests: int = 0
    flows: int = 0
    allowed_flows: int = 0
    # Requests that passed at L4 on an L7 port without L7 detail to check.
    l7_unchecked: int = 0
    drops: list[Drop] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    # Per policy rule ("Kind/ns/name egress[0]"): flows it allowed.
    used: dict[str, int] = field(default_factory=dict)

    @property
    def dropped_flows(self) -> int:
        return sum(d.flows for d in self.drops)


def side_label(peer: Peer, workload: str) -> str:
    if peer.kind is PeerKind.WORKLOAD:
        return f"{peer.namespace}/{workload or ','.join(peer.labels)}"
    if peer.kind is PeerKind.POD:
        return f"{peer.namespace}/{peer.name} (world identity)"
    return peer.name or str(peer.kind)


@dataclass
class _Item:
    """One distinct request to replay, with the evidence behind it."""

    request: Request
    edge: Edge
    flows: int
    first: datetime
    last: datetime
    nodes: set[str]
    example: str = ""


def verify(
    edges: Sequence[Edge],
    engine: Engine,
    namespaces: Iterable[str] = (),
    samples: Mapping[tuple[object, ...], tuple[Sample, ...]] | None = None,
) -> Verification:
    """Replay the allowed evidence of the graph (edges touching `namespaces`, all when empty),
    less what the graph's policy drops contradict (see settle). With `samples` (the graph was
    built from flows), each edge is replayed as the concrete requests behind it."""
    return _replay(_items(edges, samples), engine, namespaces)


def _items(edges: Sequence[Edge], samples: Mapping[tuple[object, ...], tuple[Sample, ...]] | None) -> list[_Item]:
    granted = [edge for edge in settle(edges)[0] if edge.use in GRANTING]
    if samples is None:
        return [_Item(request(edge), edge, edge.flows, edge.first, edge.last, set(edge.nodes)) for edge in granted]
    names = _display_names(edges)
    items: dict[tuple[object, ...], _Item] = {}
    for edge in granted:
        if not samples.get(edge.key):
            # No sample for this edge (e.g. evidence from an older store): replay the edge itself,
            # never skip it, or a drop would go unreported.
            items[(edge.key, None)] = _Item(request(edge), edge, edge.flows, edge.first, edge.last, set(edge.nodes))
            continue
        for sample in samples.get(edge.key, ()):
            shown = replace(
                edge,
                l7=replace(edge.l7, query=sample.query),
                source_workload=names.get(edge.source, ""),
                destination_workload=names.get(edge.destination, ""),
            )
            replayed = Request(
                _sample_party(edge.source, sample.source_labels, sample.source_address),
                _sample_party(edge.destination, sample.destination_labels, sample.destination_address),
                edge.protocol,
                edge.port,
                request(shown).l7,
            )
            key = (edge.key, replayed)
            item = items.get(key)
            if item is None:
                items[key] = _Item(
                    replayed, shown, sample.events, sample.first, sample.last, set(sample.nodes), sample.example
                )
                continue
            item.flows += sample.events
            if sample.first < item.first:
                item.example = sample.example
            item.first, item.last = min(item.first, sample.first), max(item.last, sample.last)
            item.nodes.update(sample.nodes)
    return [item for _key, item in sorted(items.items(), key=lambda kv: repr(kv[0]))]


def _display_names(edges: Iterable[Edge]) -> dict[Peer, str]:
    """Each peer's display name, the same whichever edge is read first."""
    names: dict[Peer, str] = {}
    for edge in edges:
        for peer, name in ((edge.source, edge.source_workload), (edge.destination, edge.destination_workload)):
            names[peer] = max(names.get(peer, ""), name)
    return names


def _sample_party(peer: Peer, labels: tuple[str, ...], address: str) -> Party:
    """How the engine sees one side of a sample: a workload with its full identity labels
    (reserved ones aside), an outside peer with its address."""
    if peer.kind is not PeerKind.WORKLOAD:
        base = party(peer)
        return replace(base, ip=base.ip or address) if base.world else base
    found = {NAMESPACE_KEY: peer.namespace}
    for label in labels:
        source, key, value = split_label(label)
        if source != "reserved":
            found[f"{source or 'k8s'}:{key}"] = value
    return Party(tuple(sorted(found.items())))


def _replay(items: Sequence[_Item], engine: Engine, namespaces: Iterable[str]) -> Verification:
    wanted = set(namespaces)
    result = Verification()
    decisions: dict[Request, Decision] = {}
    for item in items:
        edge = item.edge
        if wanted and not wanted & {edge.source.namespace, edge.destination.namespace}:
            continue
        decision = decisions.get(item.request)
        if decision is None:
            decision = decisions[item.request] = engine.decide(item.request)
        result.requests += 1
        result.flows += item.flows
        for rule in decision.egress.allowed_by + decision.ingress.allowed_by:
            result.used[rule] = result.used.get(rule, 0) + item.flows
        if decision.allowed:
            result.allowed_flows += item.flows
            if decision.egress.l7_unchecked or decision.ingress.l7_unchecked:
                result.l7_unchecked += 1
            continue
        result.drops.append(
            Drop(
                source=side_label(edge.source, edge.source_workload),
                destination=side_label(edge.destination, edge.destination_workload),
                protocol=edge.protocol,
                port=edge.port,
                l7=describe_l7(edge),
                refused_by=decision.refused,
                denied_by=decision.egress.denied_by + decision.ingress.denied_by,
                flows=item.flows,
                first=item.first,
                last=item.last,
                nodes=tuple(sorted(item.nodes)),
                dns=edge.is_dns,
                example_flow=item.example,
            )
        )
    result.drops.sort(key=lambda d: (not d.dns, d.source, d.destination, d.protocol, d.port, d.l7, d.example_flow))
    result.warnings = sorted(engine.warnings)
    return result
