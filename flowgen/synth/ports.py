"""What one peer used, as the ports of a rule entry: L4 ports merged, ICMP apart, L7 rules
where Hubble saw L7 (ref cilium-policy.md §7).

A port with L7 rules gets no L4-only allow as well: Cilium would then admit every request
on it, and the L7 rule would be moot (§7.1).
"""

from __future__ import annotations

import re
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field

from flowgen.cilium import NO_KAFKA_RULES
from flowgen.graph.edge import Edge
from flowgen.graph.evidence import L7Kind
from flowgen.graph.folding import LEGACY_ID_PLACEHOLDER, REST_PLACEHOLDER
from flowgen.graph.identity import Peer
from flowgen.ingest.flow import Protocol
from flowgen.policy.formats import kafka_topic_problem, regex_problem
from flowgen.policy.model import Direction, HTTPRule, ICMPField, L4Protocol, L7Rules, PortProtocol, PortRule
from flowgen.synth.context import PREPOSITION, Context
from flowgen.synth.notes import Note, NoteKind
from flowgen.synth.options import L7Mode
from flowgen.synth.paths import Template, path_rules, path_template
from flowgen.synth.patterns import kafka_rules

# Cilium's CRD takes at most 40 ports in one port rule (maxItems, ref cilium-policy.md §6).
MAX_PORTS = 40


@dataclass(frozen=True, slots=True)
class Ports:
    """A rule entry's `toPorts` and ICMP fields for one peer, and the notes about them."""

    rules: tuple[PortRule, ...] = ()
    icmps: tuple[ICMPField, ...] = ()
    notes: tuple[Note, ...] = ()


@dataclass(slots=True)
class _PortEvidence:
    """What one peer did on one (protocol, port)."""

    l7: list[Edge] = field(default_factory=list)
    l4: list[Edge] = field(default_factory=list)


def port_rules(ctx: Context, subject: Peer, peer: Peer, edges: Sequence[Edge], direction: Direction) -> Ports:
    """The ports `subject` used with `peer`: plain ports merged into port rules of at most
    MAX_PORTS, then one port rule per port with L7 rules; ICMP types apart."""
    by_port: dict[tuple[str, int], _PortEvidence] = defaultdict(_PortEvidence)
    icmps: set[ICMPField] = set()
    for edge in edges:
        if edge.protocol in (Protocol.ICMPv4, Protocol.ICMPv6):
            icmps.add(ICMPField(edge.port, "IPv4" if edge.protocol is Protocol.ICMPv4 else "IPv6"))
            continue
        slot = by_port[(edge.protocol, edge.port)]
        (slot.l7 if edge.l7.kind is not L7Kind.NONE else slot.l4).append(edge)
    plain: list[PortProtocol] = []
    with_l7: list[PortRule] = []
    notes: list[Note] = []
    for (protocol, port), slot in sorted(by_port.items()):
        where = f"{PREPOSITION[direction]} {ctx.label(peer)} port {port}"
        usable = _usable(ctx, subject, where, slot.l7, notes)
        if slot.l7 and not usable:
            continue  # L7 was seen, none of it can be written: an L4 allow would admit every request
        l7, said = l7_rules(ctx, subject, where, usable)
        notes.extend(said)
        if l7 is not None and not (l7.http or l7.kafka or l7.dns):
            continue  # every request's rule was left out: the port is not allowed at all
        if l7 is not None:
            with_l7.append(PortRule((PortProtocol(str(port), L4Protocol.TCP),), l7))
        elif protocol in L4Protocol.__members__:
            plain.append(PortProtocol(str(port), L4Protocol(protocol)))
    chunks = [tuple(plain[i : i + MAX_PORTS]) for i in range(0, len(plain), MAX_PORTS)]
    return Ports(tuple(PortRule(chunk) for chunk in chunks) + tuple(with_l7), tuple(sorted(icmps)), tuple(notes))


def _usable(ctx: Context, subject: Peer, where: str, edges: Sequence[Edge], notes: list[Note]) -> list[Edge]:
    """The L7 edges whose values a rule can carry; a note for each left out (a Kafka topic
    Kafka itself would refuse, from a crafted or broken capture)."""
    usable = []
    for edge in edges:
        problem = kafka_topic_problem(edge.l7.path) if edge.l7.kind is L7Kind.KAFKA and edge.l7.path else None
        if problem:
            notes.append(
                Note(
                    NoteKind.UNUSABLE_VALUE,
                    ctx.label(subject),
                    f"{where}: Kafka topic {edge.l7.path!r} {problem}; left out",
                    edge.flows,
                )
            )
        else:
            usable.append(edge)
    return usable


def l7_rules(ctx: Context, subject: Peer, where: str, edges: Sequence[Edge]) -> tuple[L7Rules | None, list[Note]]:
    """The L7 rules for the requests seen on one peer's port (None: the port is allowed at L4).
    HTTP and gRPC need `--l7 http` or `all`; Kafka needs `all` and a release that has Kafka rules.
    `where` names the peer and port in the notes."""
    mode = ctx.options.l7
    http = [e for e in edges if e.l7.kind in (L7Kind.HTTP, L7Kind.GRPC)]
    kafka = [e for e in edges if e.l7.kind is L7Kind.KAFKA]
    if http and mode is not L7Mode.NONE:
        rules, notes = http_rules(ctx, subject, where, http)
        return L7Rules(http=rules), notes
    if kafka and mode is L7Mode.ALL:
        if ctx.options.version >= NO_KAFKA_RULES:
            topics = ", ".join(sorted({e.l7.path for e in kafka} - {""})) or "none"
            omitted = Note(
                NoteKind.KAFKA,
                ctx.label(subject),
                f"{where}: Kafka rules were removed in Cilium 1.20; allowed at L4 only (topics seen: {topics})",
                sum(e.flows for e in kafka),
            )
            return None, [omitted]
        return L7Rules(kafka=kafka_rules(kafka)), []
    return None, []


def http_rules(
    ctx: Context, subject: Peer, where: str, edges: Sequence[Edge]
) -> tuple[tuple[HTTPRule, ...], list[Note]]:
    """One HTTP rule per method and path pattern: id segments as the classes of id seen there
    (flowgen.synth.paths); past `path_collapse` patterns for one method they collapse, and a
    note says what the collapsed pattern admits. `where` names the peer and port in the notes."""
    notes: list[Note] = []
    by_method: dict[str, dict[Template, bool]] = defaultdict(dict)
    for edge in edges:
        # gRPC paths name a service and a method: literal, never generalized.
        grpc = edge.l7.kind is L7Kind.GRPC
        template = path_template(edge.l7.path, folded=edge.folded, literal=grpc)
        paths = by_method[edge.l7.method]
        paths[template] = paths.get(template, False) or edge.l7.query
        if edge.folded:
            notes.append(Note(NoteKind.FOLDED_PATHS, ctx.label(subject), _folded(where, edge), edge.flows))
    rules: list[HTTPRule] = []
    for method, paths in sorted(by_method.items()):
        regexes, collapsed = path_rules(paths, ctx.options.path_collapse)
        notes.extend(
            Note(
                NoteKind.COLLAPSED_PATHS,
                ctx.label(subject),
                f"{where}: {c.count} distinct {method} path patterns collapsed into {c.regex}: {c.admits} "
                "(raise --path-collapse to keep them apart)",
                c.count,
            )
            for c in collapsed
        )
        for regex in regexes:
            problem = regex_problem(regex)
            if problem:
                notes.append(Note(NoteKind.UNUSABLE_VALUE, ctx.label(subject), f"{where}: {method} {regex} {problem}"))
            else:
                rules.append(HTTPRule(method=re.escape(method), path=regex))
    return tuple(sorted(rules)), notes


def _folded(where: str, edge: Edge) -> str:
    said = f"{where}: {edge.l7.method} paths beyond the observe bound were folded into {edge.l7.path}"
    if LEGACY_ID_PLACEHOLDER in edge.l7.path.split("/"):
        said += (
            f"; {LEGACY_ID_PLACEHOLDER} comes from a store written by an older flowgen, which did not keep the "
            "kind of id, so any id shape (number, UUID, hex hash, token) is allowed there: observe again to narrow it"
        )
    elif edge.l7.path.endswith(f"/{REST_PLACEHOLDER}"):
        said += "; anything below that prefix is allowed"
    return said
