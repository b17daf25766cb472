"""Existing policies vs what the evidence needs, and vs the generated proposal.

Findings, all from replaying the observed requests through the engine:

- needed: observed requests no existing policy grants (the proposal grants them);
- unused: existing allow rules that matched no observed request in the window
  (candidates to remove; the proposal leaves them out);
- denied: policy-denied drops Hubble recorded, with the existing policies that
  enforce the refusing side (or the deny rule that matched);
- files: a unified YAML diff per policy between the existing set and the
  proposal, both rendered by flowgen (stable key order, no comments), so only
  real changes show.
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime

from flowgen.check.engine import Engine
from flowgen.check.verify import Drop, Verification, describe_l7, request, side_label, verify
from flowgen.cilium import DEFAULT_RELEASE, Mode, Release
from flowgen.graph.edge import Edge, Sample
from flowgen.graph.evidence import Use
from flowgen.policy.model import Direction, PeerRule, Policy, Rule
from flowgen.policy.render import dump
from flowgen.synth.baseline import DEFAULT_DENY


@dataclass(frozen=True, slots=True)
class Unused:
    rule: str
    summary: str


@dataclass(frozen=True, slots=True)
class Denied:
    source: str
    destination: str
    protocol: str
    port: int
    l7: str
    drop_reason: str
    flows: int
    # Policies whose rules (or explicit denies) refuse it today.
    attributed_to: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class FileDiff:
    name: str
    # "added", "removed" (only in the existing set), "changed" or "unchanged".
    status: str
    text: str


@dataclass
class Comparison:
    needed: list[Drop]
    unused: list[Unused]
    denied: list[Denied]
    files: list[FileDiff]
    first: datetime | None
    last: datetime | None
    warnings: list[str] = field(default_factory=list)
    existing: Verification | None = None

    @property
    def changed(self) -> bool:
        return bool(self.needed or self.unused or any(f.status != "unchanged" for f in self.files))


def allow_entries(policies: Iterable[Policy], namespaces: set[str]) -> list[tuple[str, PeerRule]]:
    """Every allow entry of the existing policies in scope, named as the engine names them."""
    found = []
    for policy in policies:
        if namespaces and policy.namespace and policy.namespace not in namespaces:
            continue
        scope = f"{policy.kind.value}/{policy.namespace + '/' if policy.namespace else ''}{policy.name}"
        for index, rule in enumerate(policy.specs):
            spec = f" specs[{index}]" if len(policy.specs) > 1 else ""
            for direction in Direction:
                for n, entry in enumerate(rule.section(direction) or ()):
                    if entry == PeerRule():
                        continue  # `{}`: the default-deny switch, not an allowance
                    found.append((f"{scope}{spec} {direction.value}[{n}]", entry))
    return found


def _baseline(rule: str) -> bool:
    """flowgen's own baselines (the namespace default deny's DNS allowance, the cluster-wide
    policies) hold for pods the window may not show; unused, they are not candidates to remove."""
    name = rule.split(" ", 1)[0].rsplit("/", 1)[-1]
    return name == DEFAULT_DENY or name.startswith("flowgen-baseline-")


def _summary(entry: PeerRule) -> str:
    parts = []
    if entry.endpoints is not None:
        parts.append(
            "endpoints " + "; ".join(",".join(f"{k}={v}" for k, v in s.match_labels) or "{}" for s in entry.endpoints)
        )
    if entry.entities is not None:
        parts.append("entities " + ",".join(entry.entities))
    if entry.cidrs or entry.cidr_sets:
        parts.append("CIDR " + ",".join([*(entry.cidrs or ()), *(s.cidr for s in entry.cidr_sets or ())]))
    if entry.fqdns is not None:
        parts.append("FQDN " + ",".join(f.match_name or f.match_pattern for f in entry.fqdns))
    ports = [f"{p.port}/{p.protocol}" for r in entry.to_ports or () for p in r.ports]
    if ports:
        parts.append("ports " + ",".join(ports))
    return "; ".join(parts) or "any"


def _bare(policy: Policy) -> Policy:
    """The policy without comments, so rendered diffs show only what Cilium reads."""

    def rules(section: tuple[PeerRule, ...] | None) -> tuple[PeerRule, ...] | None:
        return None if section is None else tuple(replace(entry, comment="") for entry in section)

    def rule(r: Rule) -> Rule:
        return replace(
            r,
            ingress=rules(r.ingress),
            egress=rules(r.egress),
            ingress_deny=rules(r.ingress_deny),
            egress_deny=rules(r.egress_deny),
        )

    return replace(policy, header=(), specs=tuple(rule(r) for r in policy.specs))


def file_diffs(existing: Sequence[Policy], proposed: Sequence[Policy], namespaces: set[str]) -> list[FileDiff]:
    def in_scope(p: Policy) -> bool:
        return not namespaces or not p.namespace or p.namespace in namespaces

    old = {p.key: p for p in existing if in_scope(p)}
    new = {p.key: p for p in proposed}
    result = []
    for key in sorted(set(old) | set(new)):
        kind, namespace, name = key
        label = f"{kind}/{namespace + '/' if namespace else ''}{name}"
        before = dump([_bare(old[key])]) if key in old else ""
        after = dump([_bare(new[key])]) if key in new else ""
        status = (
            "added"
            if key not in old
            else "removed"
            if key not in new
            else "unchanged"
            if before == after
            else "changed"
        )
        text = "".join(
            difflib.unified_diff(
                before.splitlines(keepends=True),
                after.splitlines(keepends=True),
                fromfile=f"existing/{label}" if key in old else "/dev/null",
                tofile=f"proposed/{label}" if key in new else "/dev/null",
            )
        )
        result.append(FileDiff(label, status, text))
    return result


def compare(
    edges: Sequence[Edge],
    existing: Sequence[Policy],
    proposed: Sequence[Policy],
    namespaces: Iterable[str] = (),
    *,
    version: Release = DEFAULT_RELEASE,
    mode: Mode = Mode.DEFAULT,
    samples: Mapping[tuple[object, ...], tuple[Sample, ...]] | None = None,
) -> Comparison:
    """`mode`: the cluster's policy enforcement mode, as verify takes it. `samples`: the concrete
    requests behind the edges, when the graph was built from flows (see flowgen.check.verify.verify)."""
    wanted = set(namespaces)
    engine = Engine(existing, mode=mode, version=version)
    checked = verify(edges, engine, wanted, samples)
    unused = [
        Unused(name, _summary(entry))
        for name, entry in allow_entries(existing, wanted)
        if not checked.used.get(name) and not _baseline(name)
    ]
    denied = []
    for edge in edges:
        if edge.use is not Use.DENIED:
            continue
        if wanted and not wanted & {edge.source.namespace, edge.destination.namespace}:
            continue
        replayed = request(edge)
        decision = engine.decide(replayed)
        blame = decision.egress.denied_by + decision.ingress.denied_by
        if not blame:
            parties = {
                "egress": (replayed.source, Direction.EGRESS),
                "ingress": (replayed.destination, Direction.INGRESS),
            }
            blame = tuple(
                f"{side}: no rule of {', '.join(engine.enforcing(*parties[side])) or 'any policy'} allows it"
                for side in decision.refused
            ) or ("the existing policies would allow it now",)
        denied.append(
            Denied(
                source=side_label(edge.source, edge.source_workload),
                destination=side_label(edge.destination, edge.destination_workload),
                protocol=edge.protocol,
                port=edge.port,
                l7=describe_l7(edge),
                drop_reason=edge.drop_reason,
                flows=edge.flows,
                attributed_to=blame,
            )
        )
    firsts = [e.first for e in edges]
    lasts = [e.last for e in edges]
    return Comparison(
        needed=checked.drops,
        unused=unused,
        denied=denied,
        files=file_diffs(existing, proposed, wanted),
        first=min(firsts) if firsts else None,
        last=max(lasts) if lasts else None,
        warnings=sorted(engine.warnings),
        existing=checked,
    )
