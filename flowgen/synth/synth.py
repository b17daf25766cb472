"""The communication graph -> least-privilege CiliumNetworkPolicies, plus notes for everything else.

One CiliumNetworkPolicy per observed workload (the subject) in the chosen
namespaces, with an ingress section listing who talked to it and an egress
section listing what it talked to, both from allowed (or audit) evidence only
(ref cilium-policy.md §11 is the checklist this follows):

- peers: workloads by their smallest distinguishing label set (§9.3),
  namespaced when they cross namespaces; entities; DNS names as `toFQDNs`;
  other outside addresses as /32 or /128 `toCIDR` (or the `world` entity);
  outside clients as `fromCIDR`, or `fromEntities: [world]` once enough
  distinct addresses were seen on a port (an internet-facing service);
- ports to one peer merged into one rule, ICMP in its own rule; L7 rules where
  Hubble saw L7 for that peer and port, and then no L4-only allow for that
  peer and port (it would make the L7 rule moot, §7.1);
- DNS: a workload that resolved names gets an egress rule to the DNS server
  it used (detected from the flows), on port 53 UDP and TCP, with `rules.dns`
  listing exactly the names it resolved and the names its `toFQDNs` need
  (§5.5); many names under one parent collapse to `*.parent`, never at a
  public suffix.

Anything the evidence did not turn into a rule becomes a `Note`: policy-denied
drops, peers that cannot be selected, folded or collapsed paths and names,
Kafka rules a release cannot express, workloads with little evidence.
Pure: values in, values out; the same edges in any order give the same result.

The pieces, each returning its rules with its notes: workload.py (a workload's
policy and its two sections), peers.py (the entries for one peer, outside
clients), ports.py (ports, ICMP and L7 rules), dns.py (everything DNS),
baseline.py (default deny and cluster-wide baselines), worldpods.py (notes about
pods seen with the world identity). This module surveys the
edges once and collects.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import replace

from flowgen.cilium import SYSTEM_NAMESPACES, Entity
from flowgen.graph.edge import Edge, settle
from flowgen.graph.evidence import GRANTING, Use
from flowgen.graph.identity import Peer, PeerKind
from flowgen.ingest.flow import Protocol
from flowgen.policy.model import Kind, Policy
from flowgen.policy.validation import validate
from flowgen.synth.baseline import baselines
from flowgen.synth.context import Context
from flowgen.synth.dns import find_servers
from flowgen.synth.notes import Note, NoteKind, Proposal
from flowgen.synth.options import L7Mode, Options, Scope, WorldMode
from flowgen.synth.patterns import Selectors
from flowgen.synth.workload import workload_policy
from flowgen.synth.worldpods import resolved_pod_notes

_MAX_PORT = 65535
_MAX_ICMP_TYPE = 255

# Callers import the options from here, beside `synthesize`.
__all__ = ["L7Mode", "Options", "Scope", "WorldMode", "survey", "synthesize"]


def survey(edges: Sequence[Edge], options: Options) -> Context:
    """What every piece reads, drawn once from the edges."""
    # Evidence a policy drop contradicts (sent, then dropped at the destination) allows nothing,
    # and neither does a port no rule can name.
    allowed = tuple(e for e in settle(edges)[0] if e.use in GRANTING and port_problem(e) is None)
    by_source: dict[Peer, list[Edge]] = defaultdict(list)
    by_destination: dict[Peer, list[Edge]] = defaultdict(list)
    for edge in allowed:
        by_source[edge.source].append(edge)
        by_destination[edge.destination].append(edge)
    names: dict[Peer, str] = {}
    for e in edges:
        for peer, name in ((e.source, e.source_workload), (e.destination, e.destination_workload)):
            if name:
                names[peer] = max(names.get(peer, ""), name)
    workloads = [p for e in edges for p in (e.source, e.destination) if p.kind is PeerKind.WORKLOAD]
    return Context(
        options=options,
        edges=allowed,
        by_source={peer: tuple(found) for peer, found in by_source.items()},
        by_destination={peer: tuple(found) for peer, found in by_destination.items()},
        selectors=Selectors.build(workloads),
        dns_servers=find_servers(allowed),
        names=names,
    )


def synthesize(edges: Sequence[Edge], scope: Scope, options: Options | None = None) -> Proposal:
    """Policies for the workloads of the namespaces `scope` covers, from the edges."""
    ctx = survey(edges, options or Options())
    seen = {p.namespace for e in edges for p in (e.source, e.destination) if p.kind is PeerKind.WORKLOAD}
    namespaces = scope.within(seen)
    notes = system_notes(scope, seen)
    subjects = sorted(
        {
            peer
            for e in ctx.edges
            for peer in (e.source, e.destination)
            if peer.kind is PeerKind.WORKLOAD and peer.namespace in namespaces
        }
    )
    policies: list[Policy] = []
    for subject in subjects:
        policy, said = workload_policy(ctx, subject)
        notes.extend(said)
        if policy is not None:
            policies.append(policy)
    notes.extend(_without_allowances(ctx, edges, namespaces, set(subjects)))
    added, about = baselines(ctx, namespaces)
    policies.extend(added)
    notes.extend(about)
    notes.extend(observation_notes(ctx, edges, set(namespaces)))
    notes.extend(port_notes(ctx, edges, namespaces))
    notes.extend(resolved_pod_notes(ctx, edges, namespaces))
    ordered = sorted(_dedupe_names(policies), key=lambda p: (p.kind is Kind.CNP, p.namespace, p.name))
    accepted, rejected = _accepted(ordered, ctx.options)
    return Proposal(tuple(accepted), tuple(sorted({*notes, *rejected})))


def _accepted(policies: list[Policy], options: Options) -> tuple[list[Policy], list[Note]]:
    """The last guard: a policy Cilium would reject is left out with a note, the rest is kept."""
    accepted, rejected = [], []
    for policy in policies:
        problems = validate(policy, options.version)
        if problems:
            rejected.append(
                Note(
                    NoteKind.REJECTED,
                    f"{policy.namespace or 'clusterwide'}/{policy.name}",
                    "left out, Cilium would reject it (a flowgen bug; please report it with the flows): "
                    + "; ".join(problems),
                )
            )
        else:
            accepted.append(policy)
    return accepted, rejected


def port_problem(edge: Edge) -> str | None:
    """Why the edge's port cannot be evidence for a rule: port 0 or one outside 1-65535 on
    TCP/UDP/SCTP (Cilium reads port "0" as every port), an ICMP type outside 0-255."""
    if edge.protocol in (Protocol.ICMPv4, Protocol.ICMPv6):
        return None if 0 <= edge.port <= _MAX_ICMP_TYPE else f"ICMP type {edge.port} does not exist"
    if edge.protocol in (Protocol.TCP, Protocol.UDP, Protocol.SCTP) and not 1 <= edge.port <= _MAX_PORT:
        return f"{edge.protocol} port {edge.port} is not a port (1-65535); a rule for it would allow every port"
    return None


def port_notes(ctx: Context, edges: Iterable[Edge], namespaces: list[str]) -> list[Note]:
    """A note for each allowed edge of the subjects whose port could not become a rule."""
    notes = []
    for edge in edges:
        problem = port_problem(edge) if edge.use in GRANTING else None
        sides = {p.namespace for p in (edge.source, edge.destination) if p.kind is PeerKind.WORKLOAD}
        if problem and sides & set(namespaces):
            notes.append(
                Note(
                    NoteKind.BAD_PORT,
                    ctx.label(edge.destination),
                    f"from {ctx.label(edge.source)}: {problem}; not allowed",
                    edge.flows,
                )
            )
    return notes


def system_notes(scope: Scope, seen: set[str]) -> list[Note]:
    """Which system namespaces -A left out, and the risk of those named with -n."""
    notes = []
    left_out = sorted((seen & SYSTEM_NAMESPACES) - scope.named) if scope.all_namespaces else []
    if left_out:
        notes.append(
            Note(
                NoteKind.SYSTEM,
                ", ".join(left_out),
                "-A leaves the system namespaces out (their pods keep the cluster running and talk to things a "
                f"short observation rarely shows); add -n {left_out[0]} to include them",
            )
        )
    for namespace in sorted(seen & SYSTEM_NAMESPACES & scope.named):
        notes.append(
            Note(
                NoteKind.SYSTEM,
                namespace,
                "policies for system pods: a flow the observation missed (an upstream resolver, a webhook call, "
                "an upgrade) breaks the whole cluster, not one workload; observe across restarts and upgrades and "
                "apply them in audit mode first",
            )
        )
    return notes


def _without_allowances(ctx: Context, edges: Iterable[Edge], namespaces: list[str], covered: set[Peer]) -> list[Note]:
    """Workloads of `namespaces` seen only in traffic that allows nothing (policy-denied drops)."""
    bare = sorted(
        {
            peer
            for e in edges
            for peer in (e.source, e.destination)
            if peer.kind is PeerKind.WORKLOAD and peer.namespace in namespaces and peer not in covered
        }
    )
    outcome = (
        "under the namespace default deny it may send and receive nothing"
        if ctx.options.default_deny
        else "it gets no policy and stays unrestricted (--default-deny denies it everything)"
    )
    return [
        Note(NoteKind.NO_ALLOWANCE, ctx.label(peer), f"no allowed traffic was seen, only policy drops: {outcome}")
        for peer in bare
    ]


def observation_notes(ctx: Context, edges: Iterable[Edge], wanted: set[str]) -> list[Note]:
    """What every edge, allowed or not, tells a reviewer: host-network pods, policy-denied
    drops touching the `wanted` namespaces and audit-mode evidence."""
    notes = []
    for edge in edges:
        for peer, name in ((edge.source, edge.source_workload), (edge.destination, edge.destination_workload)):
            if peer.kind is PeerKind.ENTITY and peer.name == Entity.HOST and name:
                notes.append(
                    Note(
                        NoteKind.HOST_NETWORK,
                        name,
                        "a host-network pod: its traffic carries the node's identity, so no pod policy can select "
                        "it (it needs a host policy); its peers' rules name the host entity",
                    )
                )
        if edge.use is Use.DENIED and wanted & {edge.source.namespace, edge.destination.namespace}:
            notes.append(
                Note(
                    NoteKind.DENIED,
                    ctx.label(edge.destination),
                    f"{edge.drop_reason} from {ctx.label(edge.source)} on {edge.protocol}/{edge.port}: "
                    f"{edge.flows} flows dropped by policy; not allowed (review: wanted traffic or an attack?)",
                    edge.flows,
                )
            )
        elif edge.use is Use.AUDIT:
            notes.append(
                Note(
                    NoteKind.AUDIT,
                    ctx.label(edge.destination),
                    f"from {ctx.label(edge.source)} on {edge.protocol}/{edge.port}: seen in audit mode "
                    "(would have been dropped); allowed as evidence",
                    edge.flows,
                )
            )
    return notes


def _dedupe_names(policies: list[Policy]) -> list[Policy]:
    """Two workloads with the same display name in a namespace get numbered names."""
    seen: dict[tuple[str, str], int] = defaultdict(int)
    result = []
    for policy in policies:
        seen[(policy.namespace, policy.name)] += 1
        count = seen[(policy.namespace, policy.name)]
        result.append(replace(policy, name=f"{policy.name}-{count}") if count > 1 else policy)
    return result
