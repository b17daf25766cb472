"""Reports for reviewers: generate's notes, verify's drops and probes, diff's findings (text, Markdown, JSON)."""

from __future__ import annotations

from flowgen.check.diff import Comparison
from flowgen.check.probes import MEANINGS, Leak, ProbeClass, ProbeReport, describe
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
    NoteKind.BAD_PORT: "Ports that cannot be evidence",
    NoteKind.UNUSABLE_VALUE: "Values left out of rules",
    NoteKind.REJECTED: "Policies left out (Cilium would reject them)",
    NoteKind.WORLD_POD_RESOLVED: "Pods seen with the world identity, resolved",
    NoteKind.WORLD_POD_UNRESOLVED: "Pods seen only with the world identity (no rule)",
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
# verify --probes

# Allowed probes shown per class in text (Markdown and JSON list them all).
SHOWN_LEAKS = 5


def _probe_summary(report: ProbeReport, policies: int) -> list[str]:
    lines = [
        f"Probed {report.total} near-miss requests no evidence supports against {policies} policies: "
        f"{len(report.allowed)} would be allowed."
    ]
    if report.dropped:
        lines.append(
            f"Observed requests: {report.observed} replayed, {report.dropped} would be dropped "
            "(a policy set that drops what is needed is not tight, it is broken: see flowgen verify)."
        )
    else:
        lines.append(f"Observed requests: {report.observed} replayed, all admitted.")
    scope = f"Namespaces probed: {', '.join(report.namespaces) or 'none'}."
    if report.not_probed:
        scope += (
            f" Not probed: {', '.join(report.not_probed)} (system namespaces no policy of the set is in; "
            "name them with -n to probe them)."
        )
    return [*lines, scope]


def _leak_why(leak: Leak) -> str:
    rules = ", ".join(leak.allowed_by) or "no enforcing policy on either side"
    return f"allowed by {rules}" + ("; passed at L4 without L7 detail" if leak.l7_unchecked else "")


def probes_text(report: ProbeReport, policies: int) -> str:
    lines = _probe_summary(report, policies)
    lines.append(f"  {'class':<22} {'probes':>6} {'allowed':>7}")
    lines.extend(f"  {kind:<22} {report.probes[kind]:>6} {len(report.leaks(kind)):>7}" for kind in ProbeClass)
    if report.allowed:
        lines.append("Allowed probes, by class:")
    for kind in ProbeClass:
        leaks = report.leaks(kind)
        if not leaks:
            continue
        lines.append(f"  {kind} ({len(leaks)} of {report.probes[kind]}): {MEANINGS[kind]}")
        lines.extend(f"    {leak.probe.example}  ({_leak_why(leak)})" for leak in leaks[:SHOWN_LEAKS])
        if len(leaks) > SHOWN_LEAKS:
            lines.append(f"    ... and {len(leaks) - SHOWN_LEAKS} more (-o markdown or -o json lists them all)")
    lines.extend(f"Warning: not modelled: {w}" for w in report.warnings)
    return "\n".join(lines) + "\n"


def probes_markdown(report: ProbeReport, policies: int) -> str:
    lines = ["# flowgen verify --probes", "", *_probe_summary(report, policies)]
    lines += ["", "| class | what it tries | probes | allowed |", "|---|---|---:|---:|"]
    lines.extend(
        f"| {kind} | {_cell(MEANINGS[kind])} | {report.probes[kind]} | {len(report.leaks(kind))} |"
        for kind in ProbeClass
    )
    for kind in ProbeClass:
        leaks = report.leaks(kind)
        if not leaks:
            continue
        lines += ["", f"## {kind}: {len(leaks)} of {report.probes[kind]} allowed", ""]
        lines += ["| source | destination | port | L7 | near | why |", "|---|---|---|---|---|---|"]
        lines.extend(
            f"| {_cell(leak.probe.source_name)} | {_cell(leak.probe.destination_name)} | "
            f"{leak.probe.protocol}/{leak.probe.port} | {_cell(describe(leak.probe.l7))} | {_cell(leak.probe.near)} | "
            f"{_cell(_leak_why(leak))} |"
            for leak in leaks
        )
    if report.warnings:
        lines += ["", "## Not modelled", "", *(f"- {w}" for w in report.warnings)]
    return "\n".join(lines) + "\n"


def _leak_json(leak: Leak) -> dict[str, object]:
    probe = leak.probe
    return {
        "class": str(probe.kind),
        "source": probe.source_name,
        "destination": probe.destination_name,
        "protocol": probe.protocol,
        "port": probe.port,
        "l7": describe(probe.l7) or None,
        "near": probe.near,
        "allowed_by": list(leak.allowed_by),
        "l7_unchecked": leak.l7_unchecked,
        "example": probe.example,
    }


def probes_json(report: ProbeReport, policies: int) -> dict[str, object]:
    return {
        "policies": policies,
        "namespaces": list(report.namespaces),
        "not_probed": list(report.not_probed),
        "observed": {"requests": report.observed, "dropped": report.dropped},
        "probes": report.total,
        "allowed": len(report.allowed),
        "classes": [
            {
                "class": str(kind),
                "meaning": MEANINGS[kind],
                "probes": report.probes[kind],
                "allowed": len(report.leaks(kind)),
                "examples": [leak.probe.example for leak in report.leaks(kind)[:SHOWN_LEAKS]],
            }
            for kind in ProbeClass
        ],
        "allowed_probes": [_leak_json(leak) for leak in report.allowed],
        "warnings": report.warnings,
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
