"""Reports for reviewers: generate's notes, verify's drops, diff's findings (text, Markdown, JSON)."""

from __future__ import annotations

from flowgen.check.diff import Comparison
from flowgen.check.verify import Drop, Verification
from flowgen.synth.notes import Note, NoteKind, Proposal

_TITLES = {
    NoteKind.DENIED: "Policy-denied drops seen (not allowed; review them)",
    NoteKind.NO_LABELS: "Workloads without usable labels (no policy generated)",
    NoteKind.AMBIGUOUS: "Workloads whose labels match another workload",
    NoteKind.UNKNOWN_PEER: "Peers without identity (no rule)",
    NoteKind.NOT_EXPRESSED: "Traffic not turned into rules",
    NoteKind.FOLDED_PATHS: "HTTP paths folded while observing",
    NoteKind.COLLAPSED_PATHS: "HTTP paths collapsed into prefixes",
    NoteKind.COLLAPSED_NAMES: "DNS names collapsed into patterns",
    NoteKind.KAFKA: "Kafka rules omitted for the target release",
    NoteKind.LITTLE_EVIDENCE: "Workloads with little evidence",
    NoteKind.NO_DNS_SERVER: "No cluster DNS seen",
    NoteKind.DNS_NAMES_UNKNOWN: "DNS without names (L3/L4 only)",
    NoteKind.WIDE_DNS: "DNS allowed for any name",
    NoteKind.HOST: "Traffic from the node (probes)",
    NoteKind.AUDIT: "Audit-mode evidence",
    NoteKind.OPEN: "Directions left unrestricted",
    NoteKind.WORLD_INGRESS: "Ingress from the internet",
    NoteKind.HOST_NETWORK: "Host-network pods",
    NoteKind.DNS_SERVER: "DNS servers opened to the cluster",
    NoteKind.SYSTEM: "System namespaces",
    NoteKind.NO_ALLOWANCE: "Workloads with no allowed traffic",
}


def _cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def notes_markdown(proposal: Proposal) -> str:
    lines = ["# flowgen generate report", ""]
    lines.append(f"{len(proposal.policies)} policies, {len(proposal.notes)} notes.")
    lines.append("")
    lines.append("## Policies")
    lines.append("")
    lines.extend(f"- {p.kind.value} `{p.namespace + '/' if p.namespace else ''}{p.name}`" for p in proposal.policies)
    by_kind: dict[NoteKind, list[Note]] = {}
    for note in proposal.notes:
        by_kind.setdefault(note.kind, []).append(note)
    for kind, notes in by_kind.items():
        lines += ["", f"## {_TITLES.get(kind, str(kind))}", "", "| workload | note | flows |", "|---|---|---:|"]
        lines.extend(f"| {_cell(n.subject)} | {_cell(n.message)} | {n.flows or ''} |" for n in notes)
    return "\n".join(lines) + "\n"


def notes_json(proposal: Proposal) -> dict[str, object]:
    return {
        "policies": [{"kind": p.kind.value, "namespace": p.namespace, "name": p.name} for p in proposal.policies],
        "notes": [
            {"kind": str(n.kind), "subject": n.subject, "message": n.message, "flows": n.flows} for n in proposal.notes
        ],
    }


# ---------------------------------------------------------------------------
# verify


def _drop_row(drop: Drop) -> str:
    refused = " and ".join(drop.refused_by)
    why = f"denied by {', '.join(drop.denied_by)}" if drop.denied_by else f"no {refused} rule allows it"
    return (
        f"| {_cell(drop.source)} | {_cell(drop.destination)} | {drop.protocol}/{drop.port} | {_cell(drop.l7)} | "
        f"{drop.flows} | {_cell(why)} | {_cell(drop.example)} |"
    )


_DROP_HEADER = [
    "| source | destination | port | L7 | flows | why | example |",
    "|---|---|---|---|---:|---|---|",
]


def verification_markdown(result: Verification, policies: int) -> str:
    lines = ["# flowgen verify", ""]
    lines.append(
        f"Replayed {result.requests} observed requests ({result.flows} flows) against {policies} policies: "
        f"{len(result.drops)} would be dropped ({result.dropped_flows} flows)."
    )
    dns = [d for d in result.drops if d.dns]
    other = [d for d in result.drops if not d.dns]
    if dns:
        lines += ["", "## DNS lookups that would be refused", ""]
        lines.append("Names behind toFQDNs rules stop resolving when their lookups are refused.")
        lines += ["", *_DROP_HEADER, *(_drop_row(d) for d in dns)]
    if other:
        lines += ["", "## Requests that would be dropped", "", *_DROP_HEADER, *(_drop_row(d) for d in other)]
    if result.l7_unchecked:
        lines += ["", f"{result.l7_unchecked} connections passed at L4 on L7 ports without L7 detail to check."]
    if result.warnings:
        lines += ["", "## Not modelled", "", *(f"- {w}" for w in result.warnings)]
    return "\n".join(lines) + "\n"


def verification_text(result: Verification, policies: int) -> str:
    lines = [
        f"Replayed {result.requests} observed requests ({result.flows} flows) against {policies} policies: "
        f"{len(result.drops)} would be dropped ({result.dropped_flows} flows)"
    ]
    for title, drops in (
        ("DNS lookups that would be refused (toFQDNs names would stop resolving)", [d for d in result.drops if d.dns]),
        ("Requests that would be dropped", [d for d in result.drops if not d.dns]),
    ):
        if drops:
            lines.append(f"{title}:")
            for d in drops:
                why = f"denied by {', '.join(d.denied_by)}" if d.denied_by else f"no {' and '.join(d.refused_by)} rule"
                lines.append(f"  {d.flows:>6} flows  {d.example}  ({why})")
    if result.l7_unchecked:
        lines.append(f"{result.l7_unchecked} connections passed at L4 on L7 ports without L7 detail to check")
    lines.extend(f"Warning: not modelled: {w}" for w in result.warnings)
    return "\n".join(lines) + "\n"


def _drop_json(d: Drop) -> dict[str, object]:
    return {
        "source": d.source,
        "destination": d.destination,
        "protocol": d.protocol,
        "port": d.port,
        "l7": d.l7 or None,
        "refused_by": list(d.refused_by),
        "denied_by": list(d.denied_by),
        "flows": d.flows,
        "first": d.first.isoformat(),
        "last": d.last.isoformat(),
        "nodes": list(d.nodes),
        "dns": d.dns,
        "example": d.example,
    }


def verification_json(result: Verification, policies: int) -> dict[str, object]:
    return {
        "policies": policies,
        "requests": result.requests,
        "flows": result.flows,
        "dropped_flows": result.dropped_flows,
        "drops": [_drop_json(d) for d in result.drops],
        "l7_unchecked": result.l7_unchecked,
        "warnings": result.warnings,
    }


# ---------------------------------------------------------------------------
# diff


def _window(comparison: Comparison) -> str:
    if comparison.first is None or comparison.last is None:
        return "no evidence"
    first, last = comparison.first, comparison.last
    return f"{first:%Y-%m-%d %H:%M} .. {last:%Y-%m-%d %H:%M} UTC ({last - first})"


def comparison_markdown(comparison: Comparison) -> str:
    lines = ["# flowgen diff", "", f"Evidence window: {_window(comparison)}.", ""]
    lines += ["## Needed but not granted (the proposal widens the existing policies here)", ""]
    if comparison.needed:
        lines += [*_DROP_HEADER, *(_drop_row(d) for d in comparison.needed)]
    else:
        lines.append("None: the existing policies admit every observed request.")
    lines += ["", "## Granted but unused in the window (the proposal narrows these)", ""]
    if comparison.unused:
        lines += [
            "| rule | allows |",
            "|---|---|",
            *(f"| {_cell(u.rule)} | {_cell(u.summary)} |" for u in comparison.unused),
        ]
    else:
        lines.append("None: every existing allow rule matched observed traffic.")
    lines += ["", "## Policy-denied drops and the policies behind them", ""]
    if comparison.denied:
        lines += ["| source | destination | port | reason | flows | refused by |", "|---|---|---|---|---:|---|"]
        lines.extend(
            f"| {_cell(d.source)} | {_cell(d.destination)} | {d.protocol}/{d.port} {_cell(d.l7)} | {d.drop_reason} | "
            f"{d.flows} | {_cell('; '.join(d.attributed_to))} |"
            for d in comparison.denied
        )
    else:
        lines.append("None seen.")
    lines += ["", "## Files", ""]
    for f in comparison.files:
        lines.append(f"- `{f.name}`: {f.status}")
    for f in comparison.files:
        if f.text:
            lines += ["", f"### {f.name}", "", "```diff", f.text.rstrip("\n"), "```"]
    if comparison.warnings:
        lines += ["", "## Not modelled", "", *(f"- {w}" for w in comparison.warnings)]
    return "\n".join(lines) + "\n"


def comparison_text(comparison: Comparison) -> str:
    lines = [f"Evidence window: {_window(comparison)}"]
    lines.append(f"Needed but not granted by the existing policies: {len(comparison.needed)}")
    lines.extend(f"  {d.flows:>6} flows  {d.example}" for d in comparison.needed)
    lines.append(f"Existing allow rules unused in the window: {len(comparison.unused)}")
    lines.extend(f"  {u.rule}: {u.summary}" for u in comparison.unused)
    lines.append(f"Policy-denied drops: {len(comparison.denied)}")
    lines.extend(
        f"  {d.flows:>6} flows  {d.source} -> {d.destination} {d.protocol}/{d.port} {d.drop_reason}: "
        f"{'; '.join(d.attributed_to)}"
        for d in comparison.denied
    )
    lines.append("Files: " + (", ".join(f"{f.name} {f.status}" for f in comparison.files) or "none"))
    text = "\n".join(lines) + "\n"
    return (
        text
        + "".join(f.text for f in comparison.files if f.text)
        + "".join(f"Warning: not modelled: {w}\n" for w in comparison.warnings)
    )


def comparison_json(comparison: Comparison) -> dict[str, object]:
    return {
        "window": {
            "first": comparison.first.isoformat() if comparison.first else None,
            "last": comparison.last.isoformat() if comparison.last else None,
        },
        "needed": [_drop_json(d) for d in comparison.needed],
        "unused": [{"rule": u.rule, "allows": u.summary} for u in comparison.unused],
        "denied": [
            {
                "source": d.source,
                "destination": d.destination,
                "protocol": d.protocol,
                "port": d.port,
                "l7": d.l7 or None,
                "drop_reason": d.drop_reason,
                "flows": d.flows,
                "attributed_to": list(d.attributed_to),
            }
            for d in comparison.denied
        ],
        "files": [{"name": f.name, "status": f.status, "diff": f.text} for f in comparison.files],
        "warnings": comparison.warnings,
    }
