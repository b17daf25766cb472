"""What near-miss probes are made of: the evidence indexed to tell what it supports, and the
made-up parties, names and paths (flowgen.check.probes puts them together).

Everything made up is recognisable as such and never a real peer: the address is from
TEST-NET-1 (RFC 5737), the names end in `.example` (RFC 2606) or start with `flowgen-probe`.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace

from flowgen.check.engine import L7Request, Party
from flowgen.check.verify import party as graph_party
from flowgen.cilium import CLUSTER_KEY, NAMESPACE_KEY, NAMESPACE_LABELS_KEY_PREFIX, SERVICEACCOUNT_KEY, Entity
from flowgen.graph.edge import Edge, Sample
from flowgen.graph.evidence import L7, L7Kind
from flowgen.graph.folding import REST_PLACEHOLDER, is_id_segment
from flowgen.graph.identity import Peer, PeerKind, split_label
from flowgen.ingest.flow import Protocol

# What the probes are made of. The address is from TEST-NET-1 (RFC 5737): never a real peer.
PROBE_ADDRESS = "192.0.2.66"
PROBE_NAMESPACE = "flowgen-probe"
PROBE_APP = "flowgen-probe"
EXFIL_NAME = "exfil-1.attacker.example"
PROBE_TOPIC = "flowgen-probe"
ADMIN_PORTS = (22, 2379, 6443, 8443)
PROBE_METHODS = ("DELETE", "PUT")
SIBLING_WORDS = ("admin", "export", "debug", "internal")
SIBLING_LABEL = "admin"
SYSTEM_PORTS = (443, 80)
# At most this many probes of one class per observed edge (peers and port).
PER_EDGE = 6

ICMP = frozenset({Protocol.ICMPv4, Protocol.ICMPv6})
HOST = Peer(PeerKind.ENTITY, name=str(Entity.HOST))
WORLD = Peer(PeerKind.ENTITY, name=str(Entity.WORLD))
REMOTE_NODE = Peer(PeerKind.ENTITY, name=str(Entity.REMOTE_NODE))
KUBE_APISERVER = Peer(PeerKind.ENTITY, name=str(Entity.KUBE_APISERVER))
PROBE_WORLD = Peer(PeerKind.CIDR, name=f"{PROBE_ADDRESS}/32")
OPPOSITE_ROLE = {"produce": "fetch", "consume": "produce"}

Pair = tuple[Peer, Peer, Protocol, int]


# ---------------------------------------------------------------------------
# what the evidence supports


def outside(peer: Peer) -> bool:
    return peer.kind in (PeerKind.CIDR, PeerKind.FQDN) or peer == WORLD


def template_matches(template: str, path: str) -> bool:
    """Whether a folded path (id placeholders, a trailing `*` for anything below) covers a concrete path."""
    wanted, found = template.split("/"), path.split("/")
    if wanted[-1] == REST_PLACEHOLDER:
        wanted = wanted[:-1]
        if len(found) < len(wanted):
            return False
        found = found[: len(wanted)]
    elif len(wanted) != len(found):
        return False
    return all(w == f or (_placeholder(w) and is_id_segment(f)) for w, f in zip(wanted, found, strict=True))


def _placeholder(segment: str) -> bool:
    """An id placeholder of a folded path (`{id}`, `{int}`, ...): Hubble shows `{` `}` percent-encoded.
    Any id stands in for it here, which can only leave a candidate out."""
    return len(segment) > 2 and segment[0] == "{" and segment[-1] == "}"


@dataclass
class Seen:
    """The allowed evidence, indexed to tell whether it supports a candidate. Outside
    sources count as one: a port seen from any outside address is open to the outside."""

    l4: set[Pair] = field(default_factory=set)
    l7: set[tuple[Peer, Peer, Protocol, int, L7Kind, str, str]] = field(default_factory=set)
    folded: dict[tuple[Peer, Peer, Protocol, int, str], list[str]] = field(default_factory=dict)
    names: dict[Peer, set[str]] = field(default_factory=dict)

    def add(self, edge: Edge) -> None:
        source = WORLD if outside(edge.source) else edge.source
        self.l4.add((source, edge.destination, edge.protocol, edge.port))
        l7 = edge.l7
        if l7.kind is L7Kind.DNS:
            self.names.setdefault(source, set()).add(l7.path)
        elif edge.destination.kind is PeerKind.FQDN:
            self.names.setdefault(source, set()).add(edge.destination.name)
        if l7.kind is L7Kind.NONE:
            return
        if edge.folded:
            key = (source, edge.destination, edge.protocol, edge.port, l7.method)
            self.folded.setdefault(key, []).append(l7.path)
        else:
            self.l7.add((source, edge.destination, edge.protocol, edge.port, l7.kind, l7.method, l7.path))

    def supports(self, source: Peer, destination: Peer, protocol: Protocol, port: int, l7: L7) -> bool:
        source = WORLD if outside(source) else source
        pair = (source, destination, protocol, port)
        if not (pair in self.l4 or (outside(destination) and (source, WORLD, protocol, port) in self.l4)):
            return False
        if l7.kind is L7Kind.NONE:
            return True
        if l7.kind is L7Kind.DNS:
            return l7.path in self.names.get(source, set())
        if (*pair, l7.kind, l7.method, l7.path) in self.l7:
            return True
        return any(template_matches(t, l7.path) for t in self.folded.get((*pair, l7.method), []))


# ---------------------------------------------------------------------------
# the made-up parts


def engine_l7(l7: L7) -> L7Request:
    if l7.kind in (L7Kind.HTTP, L7Kind.GRPC):
        return L7Request(L7Kind.HTTP, method=l7.method, path=l7.path + ("?" if l7.query else ""))
    if l7.kind is L7Kind.DNS:
        return L7Request(L7Kind.DNS, name=l7.path)
    if l7.kind is L7Kind.KAFKA:
        return L7Request(L7Kind.KAFKA, method=l7.method, topic=l7.path)
    return L7Request()


def sample_party(peer: Peer, sample: Sample, source: bool) -> Party:
    """A side as one sample shows it: a workload with its full labels (reserved ones aside),
    an outside peer with its address."""
    labels, address = (
        (sample.source_labels, sample.source_address)
        if source
        else (sample.destination_labels, sample.destination_address)
    )
    if peer.kind is not PeerKind.WORKLOAD or not labels:
        base = graph_party(peer)
        return replace(base, ip=base.ip or address) if base.world else base
    found = {NAMESPACE_KEY: peer.namespace}
    for label in labels:
        origin, key, value = split_label(label)
        if origin != "reserved":
            found[f"{origin or 'k8s'}:{key}"] = value
    return Party(tuple(sorted(found.items())))


def elsewhere(pod: Party) -> Party:
    """The pod's labels in the probe namespace (with that namespace's own name label)."""
    labels = [(k, v) for k, v in pod.labels if k != NAMESPACE_KEY and not k.startswith(NAMESPACE_LABELS_KEY_PREFIX)]
    labels += [
        (NAMESPACE_KEY, PROBE_NAMESPACE),
        (f"{NAMESPACE_LABELS_KEY_PREFIX}kubernetes.io/metadata.name", PROBE_NAMESPACE),
    ]
    return Party(tuple(sorted(labels)))


def unrelated(pod: Party) -> Party:
    """A pod of the same namespace (and cluster) with none of the pod's own labels."""
    kept = [
        (k, v) for k, v in pod.labels if k in (NAMESPACE_KEY, CLUSTER_KEY) or k.startswith(NAMESPACE_LABELS_KEY_PREFIX)
    ]
    kept += [("k8s:app.kubernetes.io/name", PROBE_APP), (SERVICEACCOUNT_KEY, "default")]
    return Party(tuple(sorted(kept)))


def sibling_name(name: str) -> str:
    """`admin.<parent>` for a name with at least three labels, else ""."""
    labels = name.split(".")
    return ".".join((SIBLING_LABEL, *labels[1:])) if len(labels) >= 3 and labels[0] != SIBLING_LABEL else ""


def sibling_paths(l7: L7, replayed: str) -> list[str]:
    """Literal paths next to an observed (or folded) one."""
    path = l7.path
    parent = path.rstrip("/").rsplit("/", 1)[0] if path.strip("/") else ""
    if l7.kind is L7Kind.GRPC:
        return [f"{parent}/{word.capitalize()}" for word in SIBLING_WORDS]
    below = f"{replayed.rstrip('/')}/export"
    return [*(f"{parent}/{word}" for word in SIBLING_WORDS), below]
