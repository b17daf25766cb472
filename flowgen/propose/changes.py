"""What a proposal changes, rule by rule, and the evidence behind each rule it adds.

The base's policies (what the GitOps repository holds) and the proposal are compared
allow entry by allow entry (one item of an `ingress` / `egress` section, comments
aside), within each policy and direction:

- added: an entry of the proposal with no counterpart in the base;
- removed: an entry of the base the proposal no longer has;
- narrowed / widened / changed: an entry whose peer (the same selector, entities,
  CIDRs or names) is in both, with other ports or L7 rules: narrowed when every port and
  L7 rule it now grants was granted before, widened when it grants all it granted before
  and more, changed otherwise. Ports and L7 rules are compared as written (a regex is not
  checked for containment in another).

The evidence behind each rule of the proposal comes from replaying the window's allowed
requests against the proposal: the flows each rule admits, when they were first and last
seen, on which nodes.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime

from flowgen.check.diff import allow_entries
from flowgen.check.engine import Engine
from flowgen.check.verify import request
from flowgen.graph.edge import Edge, settle
from flowgen.graph.evidence import GRANTING
from flowgen.policy.model import L7Rules, PeerRule, Policy

# A grant: (protocol, port, end port, L7 rule or "*" for any request on the port).
Grant = tuple[str, str, int | None, tuple[str, ...]]
_ANY_L7: tuple[str, ...] = ("*",)
_ALL_PORTS: Grant = ("ANY", "0", None, _ANY_L7)


@dataclass
class RuleEvidence:
    """The observed requests one rule admits."""

    flows: int = 0
    first: datetime | None = None
    last: datetime | None = None
    nodes: set[str] = field(default_factory=set)

    def add(self, edge: Edge) -> None:
        self.flows += edge.flows
        self.first = edge.first if self.first is None else min(self.first, edge.first)
        self.last = edge.last if self.last is None else max(self.last, edge.last)
        self.nodes.update(edge.nodes)


@dataclass(frozen=True, slots=True)
class Allowance:
    """One allow entry: `rule` names it as the engine does ("CiliumNetworkPolicy/shop/api ingress[2]")."""

    rule: str
    policy: str
    direction: str
    allows: str


@dataclass(frozen=True, slots=True)
class Change:
    # "narrowed", "widened" or "changed".
    status: str
    before: Allowance
    after: Allowance


@dataclass
class Changes:
    added: list[Allowance] = field(default_factory=list)
    removed: list[Allowance] = field(default_factory=list)
    changed: list[Change] = field(default_factory=list)
    # By rule name of the proposal (see rule_evidence).
    evidence: dict[str, RuleEvidence] = field(default_factory=dict)

    def status(self, kind: str) -> list[Change]:
        return [c for c in self.changed if c.status == kind]


def rule_evidence(
    edges: Sequence[Edge], policies: Sequence[Policy], namespaces: Iterable[str]
) -> dict[str, RuleEvidence]:
    """For each allow rule of `policies`: the allowed evidence (touching `namespaces`) it admits."""
    wanted = set(namespaces)
    engine = Engine(policies)
    found: dict[str, RuleEvidence] = {}
    for edge in settle(edges)[0]:
        if edge.use not in GRANTING:
            continue
        if wanted and not wanted & {edge.source.namespace, edge.destination.namespace}:
            continue
        decision = engine.decide(request(edge))
        for rule in {*decision.egress.allowed_by, *decision.ingress.allowed_by}:
            found.setdefault(rule, RuleEvidence()).add(edge)
    return found


def _split(name: str) -> tuple[str, str]:
    """("CiliumNetworkPolicy/shop/api", "ingress") from "CiliumNetworkPolicy/shop/api ingress[2]"."""
    where, section = name.rsplit(" ", 1)
    return where, section.split("[", 1)[0]


def _peer(entry: PeerRule) -> PeerRule:
    return replace(entry, to_ports=None, icmps=None)


def changes(
    base: Sequence[Policy], proposed: Sequence[Policy], namespaces: Iterable[str], edges: Sequence[Edge] = ()
) -> Changes:
    """The entry-level changes from `base` to `proposed` for the policies of `namespaces`
    (every policy when empty; cluster-wide ones always), with the evidence of `edges`."""
    wanted = set(namespaces)
    old = allow_entries(base, wanted)
    new = allow_entries(proposed, wanted)
    old_keys = {(*_split(name), entry) for name, entry in old}
    new_keys = {(*_split(name), entry) for name, entry in new}
    gone = [(name, entry) for name, entry in old if (*_split(name), entry) not in new_keys]
    came = [(name, entry) for name, entry in new if (*_split(name), entry) not in old_keys]
    result = Changes(evidence=rule_evidence(edges, proposed, wanted))
    # Pair a removed and an added entry with the same peer in the same policy and direction.
    unpaired = {name: entry for name, entry in gone}
    for name, entry in came:
        where, direction = _split(name)
        match = next(
            (n for n, e in unpaired.items() if _split(n) == (where, direction) and _peer(e) == _peer(entry)),
            None,
        )
        after = Allowance(name, where, direction, describe(entry))
        if match is None:
            result.added.append(after)
            continue
        before_entry = unpaired.pop(match)
        before = Allowance(match, where, direction, describe(before_entry))
        result.changed.append(Change(_compare(grants(before_entry), grants(entry)), before, after))
    for name, entry in gone:
        if name in unpaired:
            where, direction = _split(name)
            result.removed.append(Allowance(name, where, direction, describe(entry)))
    return result


def _compare(before: set[Grant], after: set[Grant]) -> str:
    if before == after:
        return "changed"
    if _covers(before, after):
        return "narrowed"
    if _covers(after, before):
        return "widened"
    return "changed"


def _covers(wide: set[Grant], narrow: set[Grant]) -> bool:
    """Whether every grant of `narrow` is one of `wide`, or on a port `wide` opens to any request."""
    if _ALL_PORTS in wide:
        return True
    return all(g in wide or (g[0], g[1], g[2], _ANY_L7) in wide for g in narrow)


def _l7(rules: L7Rules | None) -> list[tuple[str, ...]]:
    if rules is None:
        return [_ANY_L7]
    found: list[tuple[str, ...]] = []
    found += [("http", r.method, r.path, r.host, *r.headers) for r in rules.http or ()]
    found += [("dns", r.match_name, r.match_pattern) for r in rules.dns or ()]
    found += [("kafka", r.role, r.api_key, r.api_version, r.client_id, r.topic) for r in rules.kafka or ()]
    return found


def grants(entry: PeerRule) -> set[Grant]:
    """What an entry grants its peer, port by port (every port when it names none)."""
    if entry.to_ports is None and entry.icmps is None:
        return {_ALL_PORTS}
    found: set[Grant] = set()
    for rule in entry.to_ports or ():
        for port in rule.ports or ():
            found.update((str(port.protocol), port.port, port.end_port, l7) for l7 in _l7(rule.rules))
    for fields in entry.icmps or ():
        found.update(("ICMP", str(f.type), None, (f.family,)) for f in fields)
    return found


def _selector(labels: Iterable[tuple[str, str]]) -> str:
    return ",".join(f"{k}={v}" for k, v in labels) or "{}"


def describe(entry: PeerRule) -> str:
    """An allow entry in a line: its peer, then its ports with their L7 rules."""
    peers = []
    if entry.endpoints is not None:
        peers.append("endpoints " + "; ".join(_selector(s.match_labels) for s in entry.endpoints))
    if entry.entities is not None:
        peers.append("entities " + ",".join(entry.entities))
    if entry.cidrs or entry.cidr_sets:
        peers.append("CIDR " + ",".join([*(entry.cidrs or ()), *(s.cidr for s in entry.cidr_sets or ())]))
    if entry.fqdns is not None:
        peers.append("FQDN " + ",".join(f.match_name or f.match_pattern for f in entry.fqdns))
    ports = []
    for rule in entry.to_ports or ():
        numbers = ",".join(
            f"{p.protocol}/{p.port}{'-' + str(p.end_port) if p.end_port else ''}" for p in rule.ports or ()
        )
        l7 = [" ".join(part for part in item[1:] if part) for item in _l7(rule.rules) if item != _ANY_L7]
        kind = _l7(rule.rules)[0][0] if rule.rules is not None and l7 else ""
        ports.append(numbers + (f" {kind.upper()} " + ", ".join(l7) if l7 else ""))
    for fields in entry.icmps or ():
        ports.append("ICMP " + ",".join(str(f.type) for f in fields))
    where = "; ".join(peers) or "any peer"
    return where + (" on " + "; ".join(ports) if ports else " on any port")
