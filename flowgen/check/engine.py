"""An offline model of Cilium's policy decision: would this request pass these policies?

A request passes when the source's egress and the destination's ingress both
allow it (ref cilium-policy.md §8). For each side:

- the policies selecting the endpoint are the CNPs of its namespace whose
  `endpointSelector` matches it and the CCNPs whose selector matches it (the
  host and outside addresses are never subjects: no host firewall);
- deny sections win over any allow;
- the direction is enforced (default deny) when the policy enforcement mode is
  `always`, or when any selecting rule has a non-empty section for it (allow or
  deny) and does not switch it off with `enableDefaultDeny`, or switches it on;
- an enforced direction passes only when some rule's peer, ports and L7 rules
  all match (the union of every selecting policy).

Peers: `{from,to}Endpoints` selectors with Cilium's implicit namespace (CNP:
the policy's namespace unless the selector names a namespace, namespace
labels or a reserved label; CCNP: any namespace, pods only), entities,
CIDRs and CIDR sets with `except`, `toFQDNs` names and patterns matched against
the DNS names known for the address. A rule with ports and no peer is an L3
wildcard. L7: HTTP method/path/host as anchored regexes (the path with its
query), DNS names, Kafka roles and api keys with topics; a connection without
L7 detail on an L7 port passes at L4 (the proxy then judges each request).

What it does not model is listed in `UNMODELLED` and reported as a warning
when a policy uses it (never guessed): toServices, toGroups, nodes,
authentication, named ports, host policies (nodeSelector), headerMatches,
serverNames, and the cluster-mesh default of selecting only the local cluster.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from functools import lru_cache

from flowgen.cilium import (
    DEFAULT_RELEASE,
    MULTI_LABEL_WILDCARD,
    NAMESPACE_KEY,
    NAMESPACE_LABEL,
    NAMESPACE_LABELS_PREFIX,
    RESERVED,
    Entity,
    Mode,
    Release,
)
from flowgen.graph.evidence import L7Kind
from flowgen.graph.identity import RESERVED_ENTITIES
from flowgen.ingest.flow import Protocol
from flowgen.policy.model import (
    INT_PORT,
    KAFKA_ROLE_KEYS,
    Direction,
    FQDNSelector,
    HTTPRule,
    KafkaRule,
    Kind,
    L4Protocol,
    Operator,
    PeerRule,
    Policy,
    PortProtocol,
    PortRule,
    Requirement,
    Rule,
    Selector,
)

UNMODELLED = (
    "toServices / toGroups / toNodes / fromNodes / fromGroups peers (such a rule matches nothing here)",
    "authentication (mutual auth) requirements",
    "named ports (matched by number only)",
    "host policies (nodeSelector) and the host firewall",
    "HTTP headerMatches, TLS serverNames, listeners, generic l7proto rules",
    "HTTP host: the evidence keeps no Host header (such a rule matches nothing here)",
    "ClusterMesh: peers in other clusters are matched by labels only",
)
# Hubble's HTTP records carry the URL's path, not always its host, and the graph keeps no host.
HOST_UNKNOWN = (
    "HTTP rules with host: were checked against requests whose Host is not known (the evidence keeps "
    "no Host header): those rules matched none of them, so a drop they explain may be a false alarm"
)
_ICMP_NAMES = {
    ("IPv4", "EchoReply"): 0,
    ("IPv4", "DestinationUnreachable"): 3,
    ("IPv4", "Redirect"): 5,
    ("IPv4", "EchoRequest"): 8,
    ("IPv4", "TimeExceeded"): 11,
    ("IPv6", "DestinationUnreachable"): 1,
    ("IPv6", "PacketTooBig"): 2,
    ("IPv6", "TimeExceeded"): 3,
    ("IPv6", "EchoRequest"): 128,
    ("IPv6", "EchoReply"): 129,
    ("IPv6", "NeighborSolicitation"): 135,
    ("IPv6", "NeighborAdvertisement"): 136,
}


_ICMP = frozenset({Protocol.ICMPv4, Protocol.ICMPv6})
# The protocols `protocol: ANY` covers.
_ANY = frozenset({Protocol.TCP, Protocol.UDP, Protocol.SCTP})


@dataclass(frozen=True, slots=True)
class Party:
    """One end of a request. `labels` are identity labels as "source:key" -> value
    (pods: k8s labels with the namespace label; entities: "reserved:<name>" -> "").
    Outside addresses have `world` set, their `ip`, and the DNS names known for it."""

    labels: tuple[tuple[str, str], ...] = ()
    ip: str = ""
    names: tuple[str, ...] = ()
    world: bool = False

    @property
    def namespace(self) -> str:
        return dict(self.labels).get(NAMESPACE_KEY, "")

    @property
    def is_pod(self) -> bool:
        return bool(self.namespace)

    @property
    def reserved(self) -> frozenset[str]:
        return frozenset(key.removeprefix(RESERVED) for key, _ in self.labels if key.startswith(RESERVED))


@dataclass(frozen=True, slots=True)
class L7Request:
    """What the proxy would see: HTTP (method, path with its query, host), a DNS name,
    or a Kafka api key and topic. Kind NONE means the request has no L7 detail (gRPC is HTTP here)."""

    kind: L7Kind = L7Kind.NONE
    method: str = ""
    path: str = ""
    host: str = ""
    name: str = ""
    topic: str = ""


@dataclass(frozen=True, slots=True)
class Request:
    source: Party
    destination: Party
    protocol: Protocol
    # The destination port; the ICMP type for ICMP.
    port: int
    l7: L7Request = L7Request()


@dataclass(frozen=True, slots=True)
class Side:
    """The decision of one side (the source's egress or the destination's ingress)."""

    enforced: bool
    allowed: bool
    # "Kind/namespace/name egress[2]" of the rules that allowed or denied it.
    allowed_by: tuple[str, ...] = ()
    denied_by: tuple[str, ...] = ()
    # The connection passes at L4 on an L7 port; its requests were not checked.
    l7_unchecked: bool = False


@dataclass(frozen=True, slots=True)
class Decision:
    egress: Side
    ingress: Side

    @property
    def allowed(self) -> bool:
        return self.egress.allowed and self.ingress.allowed

    @property
    def refused(self) -> tuple[str, ...]:
        """The sides that refuse the request: "egress" (the source's), "ingress" (the destination's)."""
        return tuple(
            side for side, verdict in (("egress", self.egress), ("ingress", self.ingress)) if not verdict.allowed
        )


_OPEN = Side(enforced=False, allowed=True)


@dataclass
class Engine:
    """Decides requests against a policy set; collects warnings about what it does not model."""

    policies: Sequence[Policy]
    mode: Mode = Mode.DEFAULT
    # allow-localhost=always (the default with Kubernetes): the node reaches its pods whatever the policy.
    allow_localhost: bool = True
    # Cilium release: `**.` in FQDN patterns is multi-label from 1.19 on.
    version: Release = DEFAULT_RELEASE
    warnings: set[str] = field(default_factory=set)

    def decide(self, request: Request) -> Decision:
        egress = self._side(request.source, request.destination, request, Direction.EGRESS)
        ingress = self._side(request.destination, request.source, request, Direction.INGRESS)
        if self.allow_localhost and not ingress.allowed and Entity.HOST in request.source.reserved:
            ingress = Side(ingress.enforced, True, ("allow-localhost",))
        return Decision(egress, ingress)

    def _side(self, subject: Party, peer: Party, request: Request, direction: Direction) -> Side:
        if self.mode is Mode.NEVER or (not subject.is_pod and Entity.HEALTH not in subject.reserved):
            return _OPEN
        rules = [(policy, index, rule) for policy in self.policies for index, rule in enumerate(policy.specs)]
        selecting = [(p, i, r) for p, i, r in rules if self._selects(p, r, subject)]
        denied = [
            f"{_where(p, i, direction, True)}[{n}]"
            for p, i, r in selecting
            for n, entry in enumerate(r.section(direction, deny=True) or ())
            if self._peer_matches(entry, peer, p, direction) and self._ports_match(entry, request, deny=True)[0]
        ]
        enforced = self.mode is Mode.ALWAYS or any(_enforces(r, direction) for _p, _i, r in selecting)
        if denied:
            return Side(enforced, False, denied_by=tuple(denied))
        if not enforced:
            return _OPEN
        allowed_by, unchecked = [], True
        for policy, index, rule in selecting:
            for n, entry in enumerate(rule.section(direction) or ()):
                if not self._peer_matches(entry, peer, policy, direction):
                    continue
                ok, l7_unchecked = self._ports_match(entry, request, deny=False)
                if ok:
                    allowed_by.append(f"{_where(policy, index, direction, False)}[{n}]")
                    unchecked = unchecked and l7_unchecked
        return Side(True, bool(allowed_by), tuple(allowed_by), l7_unchecked=bool(allowed_by) and unchecked)

    def enforcing(self, subject: Party, direction: Direction) -> list[str]:
        """The policies that select `subject` and switch default deny on for `direction`."""
        return sorted(
            {
                _name(policy)
                for policy in self.policies
                for rule in policy.specs
                if self._selects(policy, rule, subject) and _enforces(rule, direction)
            }
        )

    # -- selection -------------------------------------------------------------

    def _selects(self, policy: Policy, rule: Rule, subject: Party) -> bool:
        if rule.node_selector is not None:
            self.warnings.add(f"{_name(policy)}: host policies (nodeSelector) are not modelled; ignored")
            return False
        if rule.endpoint_selector is None:
            return False
        if policy.kind is Kind.CNP:
            if subject.namespace != policy.namespace:
                return False
        elif Entity.HEALTH in subject.reserved:
            return _matches(rule.endpoint_selector, subject)
        return subject.is_pod and _matches(rule.endpoint_selector, subject)

    def _peer_matches(self, entry: PeerRule, peer: Party, policy: Policy, direction: Direction) -> bool:
        if entry.unsupported:
            self.warnings.add(
                f"{_name(policy)}: {', '.join(entry.unsupported)} not modelled; that rule matches nothing"
            )
            return False
        kinds = [entry.endpoints, entry.entities, entry.cidrs, entry.cidr_sets, entry.fqdns]
        if all(k is None for k in kinds):
            # Only ports (or ICMP): an L3 wildcard. A rule with nothing at all (`{}`) allows nothing.
            return entry.to_ports is not None or entry.icmps is not None
        if entry.endpoints is not None and any(_matches(_peer_selector(s, policy), peer) for s in entry.endpoints):
            return True
        if entry.entities is not None and _entities(peer) & set(entry.entities):
            return True
        if peer.world and peer.ip:
            cidrs = [(c, ()) for c in entry.cidrs or ()] + [(s.cidr, s.excepts) for s in entry.cidr_sets or ()]
            if any(_in_cidr(peer.ip, c, excepts) for c, excepts in cidrs):
                return True
        if peer.world and entry.fqdns is not None and direction is Direction.EGRESS:
            return any(fqdn_matches(s, name, self.version) for s in entry.fqdns for name in peer.names)
        return False

    # -- ports and L7 ------------------------------------------------------------

    def _ports_match(self, entry: PeerRule, request: Request, *, deny: bool) -> tuple[bool, bool]:
        """(matches, passed at L4 only without checking L7)."""
        icmp = request.protocol in _ICMP
        if entry.icmps is not None:
            family = "IPv4" if request.protocol is Protocol.ICMPv4 else "IPv6"
            fields = [f for item in entry.icmps for f in item]
            return icmp and any(
                _icmp_type(f.type, f.family) == request.port and f.family == family for f in fields
            ), False
        if entry.to_ports is None:
            return True, False
        if icmp:
            return False, False
        for port_rule in entry.to_ports:
            # An integer port (recorded by the parser, see policy.INT_PORT) is matched by its
            # number; validation reports it, since the CRD refuses it.
            unmodelled = [item for item in port_rule.unsupported if not item.endswith(INT_PORT)]
            if unmodelled:
                self.warnings.add(f"toPorts {', '.join(unmodelled)} not modelled")
            if not any(self._port_matches(p, request) for p in port_rule.ports or (PortProtocol(),)):
                continue
            if deny or port_rule.rules is None:
                return True, False
            if request.l7.kind is L7Kind.HTTP and not request.l7.host and _matches_host(port_rule):
                self.warnings.add(HOST_UNKNOWN)
            verdict = _l7_allows(port_rule, request.l7, self.version)
            if verdict is not False:
                return True, verdict is None
        return False, False

    def _port_matches(self, port: PortProtocol, request: Request) -> bool:
        protocol = request.protocol
        if port.protocol is L4Protocol.ANY:
            if protocol not in _ANY:
                return False
        elif port.protocol.value != protocol:
            return False
        if not port.port.isdigit():
            self.warnings.add(f"named port {port.port!r} is not modelled (matched by number only)")
            return False
        low = int(port.port)
        if low == 0:
            return True
        high = port.end_port if port.end_port is not None and port.end_port > low else low
        return low <= request.port <= high


def _l7_allows(port_rule: PortRule, request: L7Request, version: Release) -> bool | None:
    """True/False for a request with L7 detail; None when it has none (passes at L4)."""
    rules = port_rule.rules
    assert rules is not None
    kind = request.kind
    if kind is L7Kind.NONE:
        return None
    if rules.http is not None:
        return kind is L7Kind.HTTP and any(_http_matches(r, request) for r in rules.http) if rules.http else True
    if rules.dns is not None:
        return kind is L7Kind.DNS and any(fqdn_matches(s, request.name, version) for s in rules.dns)
    if rules.kafka is not None:
        return kind is L7Kind.KAFKA and (not rules.kafka or any(_kafka_matches(r, request) for r in rules.kafka))
    return True


def _matches_host(port_rule: PortRule) -> bool:
    rules = port_rule.rules
    return rules is not None and rules.http is not None and any(rule.host for rule in rules.http)


def _http_matches(rule: HTTPRule, request: L7Request) -> bool:
    for pattern, value in ((rule.method, request.method), (rule.path, request.path), (rule.host, request.host)):
        if pattern and _regex(pattern).fullmatch(value) is None:
            return False
    return not rule.headers


def _kafka_matches(rule: KafkaRule, request: L7Request) -> bool:
    key = request.method.lower()
    if rule.role and key not in KAFKA_ROLE_KEYS.get(rule.role.lower(), frozenset()):
        return False
    if rule.api_key and rule.api_key.lower() != key:
        return False
    return not (rule.topic and request.topic and rule.topic != request.topic)


@lru_cache(maxsize=4096)
def _regex(pattern: str) -> re.Pattern[str]:
    return re.compile(pattern)


def fqdn_matches(selector: FQDNSelector, name: str, version: Release) -> bool:
    """Cilium's matchName / matchPattern: case-insensitive, anchored; `*` is any run of
    DNS characters within a label; a leading `**.` (1.19+) is one or more labels."""
    name = name.rstrip(".").lower()
    if selector.match_name:
        return selector.match_name.rstrip(".").lower() == name
    return (
        _fqdn_regex(selector.match_pattern.rstrip(".").lower(), version >= MULTI_LABEL_WILDCARD).fullmatch(name)
        is not None
    )


@lru_cache(maxsize=1024)
def _fqdn_regex(pattern: str, multi_label: bool) -> re.Pattern[str]:
    if pattern.strip("*.") == "" and pattern:
        return re.compile(r".*")
    prefix = ""
    if multi_label and re.match(r"^\*\*+\.", pattern):
        prefix = r"(?:[-a-z0-9_]+\.)+"
        pattern = pattern.split(".", 1)[1]
    body = r"[-a-z0-9_]*".join(re.escape(part) for part in re.split(r"\*+", pattern))
    return re.compile(prefix + body)


def _matches(selector: Selector, party: Party) -> bool:
    labels = party.labels
    for key, value in selector.match_labels:
        if not any(_key_matches(key, k) and v == value for k, v in labels):
            return False
    for requirement in selector.match_expressions:
        present = [v for k, v in labels if _key_matches(requirement.key, k)]
        operator = requirement.operator
        if operator is Operator.EXISTS and not present:
            return False
        if operator is Operator.DOES_NOT_EXIST and present:
            return False
        if operator is Operator.IN and not set(present) & set(requirement.values):
            return False
        if operator is Operator.NOT_IN and set(present) & set(requirement.values):
            return False
    return True


def _key_matches(selector_key: str, label_key: str) -> bool:
    """A plain or `any:` selector key matches a label from any source; `k8s:x` only k8s labels."""
    wanted_source, _, wanted = selector_key.rpartition(":") if ":" in selector_key else ("", "", selector_key)
    source, _, key = label_key.partition(":")
    return key == wanted and wanted_source in ("", "any", source)


def _names_namespace(selector: Selector) -> bool:
    keys = [k for k, _ in selector.match_labels] + [r.key for r in selector.match_expressions]
    bare = [k.split(":", 1)[1] if ":" in k else k for k in keys]
    return any(
        k.startswith(RESERVED) or b == NAMESPACE_LABEL or b.startswith(NAMESPACE_LABELS_PREFIX)
        for k, b in zip(keys, bare, strict=True)
    )


def _peer_selector(selector: Selector, policy: Policy) -> Selector:
    """The selector with the namespace Cilium adds to peers (ref §4)."""
    if _names_namespace(selector):
        return selector
    if policy.kind is Kind.CNP:
        labels = (*selector.match_labels, (NAMESPACE_KEY, policy.namespace))
        return Selector(labels, selector.match_expressions)
    return Selector(selector.match_labels, (*selector.match_expressions, Requirement(NAMESPACE_KEY, Operator.EXISTS)))


def _entities(party: Party) -> set[str]:
    """The entity names that select the party (ref cilium-policy.md §5.2)."""
    if party.world:
        return {Entity.WORLD, Entity.ALL}
    if party.is_pod:
        return {Entity.CLUSTER, Entity.ALL}
    return {*(party.reserved & RESERVED_ENTITIES), Entity.CLUSTER, Entity.ALL}


def _in_cidr(ip: str, cidr: str, excepts: Iterable[str]) -> bool:
    try:
        address = ipaddress.ip_address(ip)
        if address not in ipaddress.ip_network(cidr, strict=False):
            return False
        return not any(address in ipaddress.ip_network(e, strict=False) for e in excepts)
    except ValueError:
        return False


def _icmp_type(value: int | str, family: str) -> int:
    if isinstance(value, int):
        return value
    if value.isdigit():
        return int(value)
    return _ICMP_NAMES.get((family, value), -1)


def _enforces(rule: Rule, direction: Direction) -> bool:
    explicit = None
    if rule.enable_default_deny is not None:
        explicit = (
            rule.enable_default_deny.ingress if direction is Direction.INGRESS else rule.enable_default_deny.egress
        )
    if explicit is not None:
        return explicit
    return bool(rule.section(direction)) or bool(rule.section(direction, deny=True))


def _name(policy: Policy) -> str:
    return f"{policy.kind.value}/{policy.namespace + '/' if policy.namespace else ''}{policy.name}"


def _where(policy: Policy, index: int, direction: Direction, deny: bool) -> str:
    spec = f" specs[{index}]" if len(policy.specs) > 1 else ""
    return f"{_name(policy)}{spec} {direction.value}{'Deny' if deny else ''}"
