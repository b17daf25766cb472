"""Building the graph: flows in, frame rows out.

`GraphBuilder` turns flows into the graph frame (flowgen.graph.frame). Per flow
it decides whether the flow is evidence (flowgen.graph.evidence), who both
sides are (flowgen.graph.identity), names world destinations by DNS, folds
exploding HTTP paths, and counts a connection seen at both ends once. A flow
with a value over its length cap (flowgen.graph.evidence.over_long) is not
evidence; when that value is an L7 attribute (a path, DNS query, Kafka topic
or method) of an allowed request, its peer and port still count as having
had L7 requests: L4-only evidence for them is left out of the graph, as
synthesis leaves out an L4-only allow beside L7 rules. The port then gets the
L7 rules of the other requests seen, or no allow at all, never one that
admits every request. Rows are
combined in a dict, one entry per key (edge, hour, node), and become a frame
when graph() is called, so memory follows the number of distinct rows, not
the number of flows. Beside the rows, every
pod seen on an evidence flow (by name, or for a workload by address alone) is
kept with its owner, address and the peer it was (flowgen.graph.pods), so that
a pod Hubble gave the world identity can be resolved to the identity it has
elsewhere.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime, timedelta

import pandas as pd

from flowgen.cilium import NAMESPACE_LABELS_KEY_PREFIX, Entity
from flowgen.graph.edge import Sample
from flowgen.graph.evidence import (
    GRANTING,
    L7,
    L7_VALUES,
    L7Kind,
    Skip,
    TooLong,
    Use,
    answers_dns,
    classify,
    dns_name_too_long,
    l7_of,
    over_long,
)
from flowgen.graph.folding import SeenPaths, fold
from flowgen.graph.frame import COLUMNS, LABEL_SEPARATOR, NO_TIME, Graph, _typed, empty
from flowgen.graph.identity import Peer, PeerKind, display_name, external_peer, owner_name, peer_of
from flowgen.graph.pods import sightings_frame
from flowgen.ingest.flow import Endpoint, EventType, Flow, ObservationPoint, Protocol, TrafficDirection

# An edge's key, each side's identity labels (workloads) and address (outside peers), and
# whether the HTTP request had a query string.
_SampleKey = tuple[tuple[object, ...], tuple[str, ...], tuple[str, ...], str, str, bool]


class _SampleRow:
    """The counts of one sample while it is built (see flowgen.graph.edge.Sample)."""

    __slots__ = ("events", "example", "first", "last", "nodes")

    def __init__(self, flow: Flow, time: datetime) -> None:
        where = f" on {flow.node_name}" if flow.node_name else ""
        self.example = f"flow {flow.uuid or '(no uuid)'} at {time:%Y-%m-%d %H:%M:%S} UTC{where}"
        self.events = 0
        self.first = self.last = time
        self.nodes: set[str] = set()

    def add(self, flow: Flow, time: datetime) -> None:
        self.events += 1
        self.first, self.last = min(self.first, time), max(self.last, time)
        if flow.node_name:
            self.nodes.add(flow.node_name)


@dataclass
class BuildReport:
    """What the builder did with the flows it was given."""

    flows: int = 0
    evidence: Counter[str] = field(default_factory=Counter)
    skipped: Counter[str] = field(default_factory=Counter)
    # Evidence events describing a connection (or request) already counted.
    repeated: int = 0
    # World destinations named through a DNS answer the same client got earlier.
    named_by_dns: int = 0
    # (edge, pattern) -> requests whose path was folded into the pattern.
    folded: Counter[tuple[str, str]] = field(default_factory=Counter)
    # Values over their length cap, by kind (TooLong): flows left out as Skip.OVER_LONG, and
    # DNS answers not used to name addresses.
    over_long: Counter[str] = field(default_factory=Counter)


@dataclass(frozen=True, slots=True)
class BuildOptions:
    # Distinct raw HTTP paths kept per edge before folding.
    max_paths: int = 100
    # Two sightings of one connection within this time are one (both ends, verdict + trace).
    connection_window: timedelta = timedelta(seconds=30)
    # Two sightings of one L7 request within this time are one (egress and ingress proxy).
    request_window: timedelta = timedelta(seconds=1)
    # A DNS answer names an address for its TTL plus this grace (the connection follows the lookup).
    dns_grace: timedelta = timedelta(seconds=5)


_CACHE_LIMIT = 100_000
# The frame columns of both peers and the port (what _Side.columns, protocol and port fill).
_PORT_COLUMNS = [f"{side}_{part}" for side in ("src", "dst") for part in ("kind", "cluster", "ns", "labels", "name")]
_PORT_COLUMNS += ["protocol", "port"]


class _Row:
    """The values of one key while a batch is combined in memory."""

    __slots__ = ("delivered", "destination", "events", "first", "flows", "last", "query", "source")

    def __init__(self, time: datetime, source: _Side, destination: _Side) -> None:
        self.flows = self.events = self.delivered = 0
        self.first = self.last = time
        self.query = False
        self.source = (source.name, source.nslabels)
        self.destination = (destination.name, destination.nslabels)

    def add(self, flows: int, time: datetime, query: bool, delivered: bool, sides: tuple[_Side, _Side]) -> None:
        source, destination = sides
        self.flows += flows
        self.events += 1
        self.delivered += delivered
        self.first = min(self.first, time)
        self.last = max(self.last, time)
        self.query = self.query or query
        self.source = max(self.source, (source.name, source.nslabels))
        self.destination = max(self.destination, (destination.name, destination.nslabels))

    def values(self) -> tuple[object, ...]:
        (source, source_ns), (destination, destination_ns) = self.source, self.destination
        return (
            self.flows,
            self.events,
            self.first,
            self.last,
            self.query,
            source,
            destination,
            source_ns,
            destination_ns,
            self.delivered,
        )


class _Side:
    """A peer with its display name and its frame columns, computed once per endpoint."""

    __slots__ = ("columns", "name", "nslabels", "outside", "peer", "pod", "world")

    def __init__(self, peer: Peer, name: str, nslabels: str = "", *, outside: bool = False, pod: int = -1) -> None:
        self.peer, self.name, self.nslabels = peer, name, nslabels
        # The world entity is replaced per flow by an FQDN or CIDR peer (`outside`).
        self.world = peer == _WORLD
        self.outside = outside
        self.columns = (str(peer.kind), peer.cluster, peer.namespace, LABEL_SEPARATOR.join(peer.labels), peer.name)
        # The endpoint's pod, as an index into GraphBuilder._pods (-1: no pod, or the world).
        self.pod = pod


def _delivered(flow: Flow, use: Use, destination: Peer) -> bool:
    """Whether this sighting shows the request passed the destination's ingress: a trace
    into the pod, an ingress policy verdict or ingress proxy record. Egress-side sightings
    (from-endpoint traces, egress verdicts) do not: the destination may still drop it.
    Destinations outside the cluster have no ingress of their own (a pod with the world
    identity has: it is a pod)."""
    if use is Use.DENIED:
        return False
    if destination.kind not in (PeerKind.WORKLOAD, PeerKind.POD):
        return True
    if flow.traffic_direction is TrafficDirection.INGRESS:
        return True
    event = flow.event_type.type if flow.event_type is not None else None
    if event == EventType.TRACE:
        return flow.observation_point is ObservationPoint.TO_ENDPOINT
    # Without a direction or a trace point (field-masked exports) nothing says it stopped early.
    return flow.traffic_direction is TrafficDirection.TRAFFIC_DIRECTION_UNKNOWN and event is None


def _protocol_port(flow: Flow, attribute: L7) -> tuple[Protocol, int]:
    """The protocol and the destination port (the ICMP type for ICMP)."""
    l4 = flow.l4
    protocol = l4.protocol if l4 is not None else None
    if l4 is None or protocol is None:
        # An L7 record without its L4 header (classify made sure it has an L7 kind):
        # DNS goes over UDP, the rest over TCP.
        return (Protocol.UDP if attribute.kind is L7Kind.DNS else Protocol.TCP), 0
    icmp = l4.icmpv4 or l4.icmpv6
    return protocol, icmp.type if icmp is not None else flow.destination_port


_WORLD = Peer(PeerKind.ENTITY, name=Entity.WORLD)


class GraphBuilder:
    """Aggregates flows into a graph; `graph()` returns what was built so far."""

    def __init__(self, options: BuildOptions | None = None, *, samples: bool = False) -> None:
        self.options = options or BuildOptions()
        self.report = BuildReport()
        # With `samples`, the concrete requests behind each allowed edge (for replay, see samples()).
        self._samples: dict[_SampleKey, _SampleRow] | None = {} if samples else None
        # The rows as a frame, made when graph() asks for it after new flows (None: not made yet).
        self._frame: pd.DataFrame | None = None
        self._rows: dict[tuple[object, ...], _Row] = {}
        self._sides_seen: dict[tuple[object, ...], _Side] = {}
        self._paths: dict[tuple[object, ...], SeenPaths] = {}
        self._recent: dict[int, datetime] = {}
        self._answers: dict[tuple[Peer, str], tuple[str, datetime]] = {}
        self._latest = NO_TIME
        self._recent_limit = self._answers_limit = _CACHE_LIMIT
        self._hour = self._hour_end = NO_TIME
        # Peer pairs and ports that had an allowed L7 request with an over-long value.
        self._l7_seen: set[tuple[object, ...]] = set()
        # Pods seen (cluster, namespace, pod, owner, then the peer's side columns and names), by
        # index; and (pod index, address) -> first and last seen (see flowgen.graph.pods).
        self._pods: dict[tuple[str, ...], int] = {}
        self._sightings: dict[tuple[int, str], list[datetime]] = {}

    def add_all(self, flows: Iterable[Flow]) -> None:
        for flow in flows:
            self.add(flow)

    def add(self, flow: Flow) -> Use | Skip:
        """Take one flow into the graph; returns what it was counted as."""
        report = self.report
        report.flows += 1
        time = flow.time or NO_TIME
        self._latest = max(self._latest, time)
        if answers_dns(flow):
            self._remember_answer(flow, time)
        use = classify(flow)
        if isinstance(use, Skip):
            report.skipped[use] += 1
            return use
        attribute = l7_of(flow)
        too_long = over_long(flow, attribute)
        if too_long is not None:
            return self._leave_out(flow, use, attribute, too_long, time)
        report.evidence[use] += 1
        source, destination = self._sides(flow, time)
        if source.pod >= 0 or destination.pod >= 0:
            self._sight(flow, source, destination, time)
        protocol, port = _protocol_port(flow, attribute)
        path, folded = attribute.path, False
        if attribute.kind is L7Kind.HTTP:
            path, folded = self._fold_path(source.peer, destination.peer, protocol, port, attribute)
        first = self._first_sighting(flow, use, protocol, attribute, time)
        if not first:
            report.repeated += 1
        if not self._hour <= time < self._hour_end:
            self._hour = time.replace(minute=0, second=0, microsecond=0)
            self._hour_end = self._hour + timedelta(hours=1)
        key = (
            self._hour,
            str(use),
            str(flow.drop_reason) if use is Use.DENIED else "",
            *source.columns,
            *destination.columns,
            protocol,
            port,
            str(attribute.kind),
            attribute.method,
            path,
            folded,
            flow.node_name,
        )
        delivered = _delivered(flow, use, destination.peer)
        row = self._rows.get(key)
        if row is None:
            row = self._rows[key] = _Row(time, source, destination)
        row.add(int(first), time, attribute.query, delivered, (source, destination))
        if self._samples is not None and use in GRANTING:
            edge = (source.peer, destination.peer, protocol, port, attribute.kind, attribute.method, path, use)
            self._sample(edge, flow, (source, destination), attribute.query, time)
        self._frame = None
        return use

    def _leave_out(self, flow: Flow, use: Use, attribute: L7, too_long: TooLong, time: datetime) -> Skip:
        """Count a flow with an over-long value; for an L7 value of an allowed request, remember
        that its peers and port had L7 requests (see graph())."""
        report = self.report
        report.skipped[Skip.OVER_LONG] += 1
        report.over_long[too_long] += 1
        if too_long in L7_VALUES and use in GRANTING:
            # Every other value of the flow fits (over_long checks them first).
            named = report.named_by_dns
            source, destination = self._sides(flow, time)
            report.named_by_dns = named
            protocol, port = _protocol_port(flow, attribute)
            self._l7_seen.add((*source.columns, *destination.columns, str(protocol), port))
        return Skip.OVER_LONG

    def _sides(self, flow: Flow, time: datetime) -> tuple[_Side, _Side]:
        source = self._side(flow.source)
        destination = self._side(flow.destination)
        if source.world:
            source = _Side(external_peer(flow.ip.source if flow.ip else ""), "", outside=True)
        if destination.world:
            destination = _Side(self._world_destination(flow, source.peer, time), "", outside=True)
        return source, destination

    def _fold_path(
        self, source: Peer, destination: Peer, protocol: Protocol, port: int, attribute: L7
    ) -> tuple[str, bool]:
        base = (source, destination, protocol, port, attribute.method)
        seen = self._paths.get(base)
        if seen is None:
            seen = self._paths[base] = SeenPaths()
        path, folded = fold(seen, attribute.path, self.options.max_paths)
        if folded:
            self.report.folded[(f"{source} -> {destination} {protocol}/{port} {attribute.method}", path)] += 1
        return path, folded

    def graph(self) -> Graph:
        """The graph built so far (without L4-only evidence where an over-long L7 request was seen)."""
        if self._frame is None:
            self._frame = self._made()
        frame = self._frame
        if self._l7_seen and len(frame):
            l4_allowed = (frame["l7"] == "") & frame["use"].isin([str(use) for use in GRANTING])
            where = pd.MultiIndex.from_frame(frame[_PORT_COLUMNS]).isin(list(self._l7_seen))
            frame = frame[~(l4_allowed & where)].reset_index(drop=True)
        pods = {index: key for key, index in self._pods.items()}
        sightings = sightings_frame(
            (*pods[index][:4], address, *pods[index][4:], first, last)
            for (index, address), (first, last) in self._sightings.items()
        )
        return Graph(frame, sightings)

    def _sight(self, flow: Flow, source: _Side, destination: _Side, time: datetime) -> None:
        """Remember the pods on either side: which peer each was, at which address, when."""
        ip = flow.ip
        sightings = self._sightings
        for key in ((source.pod, ip.source if ip else ""), (destination.pod, ip.destination if ip else "")):
            if key[0] < 0:
                continue
            seen = sightings.get(key)
            if seen is None:
                sightings[key] = [time, time]
            elif time > seen[1]:
                seen[1] = time
            elif time < seen[0]:
                seen[0] = time

    def samples(self) -> dict[tuple[object, ...], tuple[Sample, ...]]:
        """The concrete requests behind each allowed edge, by Edge.key (empty unless asked for)."""
        found: dict[tuple[object, ...], list[Sample]] = {}
        for (edge, source_labels, destination_labels, source_address, destination_address, query), row in (
            self._samples or {}
        ).items():
            found.setdefault(edge, []).append(
                Sample(
                    source_labels,
                    destination_labels,
                    source_address,
                    destination_address,
                    query,
                    row.events,
                    row.first,
                    row.last,
                    tuple(sorted(row.nodes)),
                    row.example,
                )
            )
        return {edge: tuple(samples) for edge, samples in found.items()}

    def _sample(
        self, edge: tuple[object, ...], flow: Flow, sides: tuple[_Side, _Side], query: bool, time: datetime
    ) -> None:
        """Count the flow as a sample of its edge: keyed by each workload side's full labels
        and each outside side's address, what the stable key of the edge leaves out."""
        assert self._samples is not None
        source, destination = sides
        ip = flow.ip
        key: _SampleKey = (
            edge,
            flow.source.labels if source.peer.kind is PeerKind.WORKLOAD else (),
            flow.destination.labels if destination.peer.kind is PeerKind.WORKLOAD else (),
            (ip.source if ip else "") if source.outside else "",
            (ip.destination if ip else "") if destination.outside else "",
            query,
        )
        row = self._samples.get(key)
        if row is None:
            row = self._samples[key] = _SampleRow(flow, time)
        row.add(flow, time)

    def _made(self) -> pd.DataFrame:
        """The rows as a frame. Each key is one row already: no merge (a pandas group-by over the key
        columns needs several times the frame's memory)."""
        if not self._rows:
            return empty()
        # Column by column: a frame from row records passes through a block of Python objects first.
        columns = zip(*(key + row.values() for key, row in self._rows.items()), strict=True)
        return _typed(pd.DataFrame(dict(zip(COLUMNS, columns, strict=True))))

    def _side(self, endpoint: Endpoint) -> _Side:
        # Keyed by what decides the peer, its name and its pod's owner; cheaper to hash than the endpoint.
        key = (
            endpoint.identity,
            endpoint.namespace,
            endpoint.cluster_name,
            endpoint.labels,
            endpoint.pod_name,
            endpoint.workloads,
        )
        found = self._sides_seen.get(key)
        if found is None:
            if len(self._sides_seen) >= _CACHE_LIMIT:
                self._sides_seen.clear()
            peer = peer_of(endpoint)
            if peer.kind is PeerKind.WORKLOAD:
                name = display_name(endpoint)
            elif peer.kind is PeerKind.ENTITY and endpoint.pod_name:
                # A host-network pod: the node's identity, but Hubble still names the pod.
                name = f"{endpoint.namespace}/{display_name(endpoint)}"
            else:
                name = ""
            nslabels = LABEL_SEPARATOR.join(
                sorted(label for label in endpoint.labels if label.startswith(NAMESPACE_LABELS_KEY_PREFIX))
            )
            found = self._sides_seen[key] = _Side(peer, name, nslabels, pod=self._pod(endpoint, peer, name, nslabels))
        return found

    def _pod(self, endpoint: Endpoint, peer: Peer, name: str, nslabels: str) -> int:
        """The index of the endpoint's pod with the peer it is: a workload (its address alone tells
        which pod when Hubble gave no pod name), a world-identity pod, or a host-network pod's
        entity; -1 for anything else."""
        if peer.kind is not PeerKind.WORKLOAD and (not endpoint.pod_name or peer.kind is PeerKind.UNKNOWN):
            return -1
        if peer == _WORLD:
            return -1
        cluster, namespace = peer.cluster or endpoint.cluster_name, endpoint.namespace or peer.namespace
        labels = LABEL_SEPARATOR.join(peer.labels)
        key: tuple[str, ...] = (cluster, namespace, endpoint.pod_name, owner_name(endpoint), str(peer.kind))
        key += (peer.cluster, peer.namespace, labels, peer.name, name, nslabels)
        return self._pods.setdefault(key, len(self._pods))

    def _remember_answer(self, flow: Flow, time: datetime) -> None:
        """A DNS answer names its addresses for the client it went to, for its TTL."""
        assert flow.l7 is not None and flow.l7.dns is not None
        dns = flow.l7.dns
        if dns_name_too_long(dns.query):
            self.report.over_long[TooLong.DNS_NAME] += 1
            return
        client = self._side(flow.destination).peer
        expires = time + timedelta(seconds=dns.ttl) + self.options.dns_grace
        if len(self._answers) >= self._answers_limit:
            self._answers = {k: v for k, v in self._answers.items() if v[1] >= self._latest}
            self._answers_limit = max(_CACHE_LIMIT, 2 * len(self._answers))
        for address in dns.ips:
            self._answers[(client, address)] = (dns.query, expires)

    def _world_destination(self, flow: Flow, client: Peer, time: datetime) -> Peer:
        address = flow.ip.destination if flow.ip else ""
        answer = self._answers.get((client, address))
        answered = answer[0].rstrip(".").lower() if answer and (flow.time is None or time <= answer[1]) else ""
        names = [name.rstrip(".").lower() for name in flow.destination_names]
        if names:
            return external_peer(address, answered if answered in names else min(names))
        if answered:
            self.report.named_by_dns += 1
        return external_peer(address, answered)

    def _first_sighting(self, flow: Flow, use: Use, protocol: Protocol, attribute: L7, time: datetime) -> bool:
        """False when the same connection (or L7 request) was already counted within its window."""
        ip, l4 = flow.ip, flow.l4
        ports = l4.ports if l4 is not None else None
        # Only the key's 64-bit hash is kept: a collision (about 1 in 2**64 per pair)
        # would merely count one connection too few, and the map stays small.
        key = hash(
            (
                ip.source if ip else flow.source.pod_name,
                ports.source_port if ports else 0,
                ip.destination if ip else flow.destination.pod_name,
                ports.destination_port if ports else 0,
                protocol,
                use,
                attribute.kind,
                attribute.method,
                attribute.path,
            )
        )
        window = self.options.request_window if attribute.kind else self.options.connection_window
        last = self._recent.get(key)
        self._recent[key] = time
        if len(self._recent) >= self._recent_limit:
            horizon = self._latest - max(self.options.connection_window, self.options.request_window)
            self._recent = {k: t for k, t in self._recent.items() if t >= horizon}
            # Sweep again only when the map has doubled: amortized O(1) per flow.
            self._recent_limit = max(_CACHE_LIMIT, 2 * len(self._recent))
        return last is None or abs(time - last) > window or flow.time is None
