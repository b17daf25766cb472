"""The pull request a reviewer judges at a glance: title, commit message and body (Markdown).

The body says what the proposal changes against the base branch (policies added, changed,
removed; allow rules added, narrowed, widened, removed), the evidence behind each rule it
adds (flows, first and last seen, nodes), the observation window and the events Hubble
lost, the policy-denied drops seen, what `verify` says of the proposed policies against
the window's flows, generate's notes and a Mermaid picture of the graph (GitHub and GitLab
render it). Everything is deterministic: the same evidence and base give the same text,
so a second run on the same evidence changes nothing.

Workload labels, paths and names come from the cluster: in the body they are escaped so
that they cannot format, link, mention anyone or close a code block.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from flowgen.check.diff import Comparison, compare
from flowgen.check.engine import Engine
from flowgen.check.verify import Drop, Verification, verify
from flowgen.cilium import DEFAULT_RELEASE, Release
from flowgen.graph.edge import Edge, Sample
from flowgen.graph.views import mermaid
from flowgen.policy.model import Policy
from flowgen.propose.changes import Allowance, Changes, RuleEvidence, changes
from flowgen.synth.notes import Note

# GitHub refuses a body over 65536 characters; GitLab takes more. Leave room for the marker.
BODY_LIMIT = 60_000
# Past this many arrows a Mermaid picture is not drawn (it would not render legibly, if at all).
MAX_ARROWS = 150
# Identifies flowgen's pull requests (first line of every body; invisible when rendered).
MARKER = "<!-- flowgen-propose"
TRAILER = "Generated-by: flowgen propose"


@dataclass(frozen=True)
class Review:
    """Everything the pull request says."""

    # "shop", "data, shop" or "all namespaces".
    scope: str
    branch: str
    base: str
    path: str
    comparison: Comparison
    changes: Changes
    # generate's notes, and how many policies the folder holds after the change.
    notes: tuple[Note, ...]
    policies: int
    verification: Verification
    # The graph drawn (edges touching the scope).
    edges: Sequence[Edge]
    # Events Hubble lost while observing, by source; None when not known.
    lost: Mapping[str, int] | None
    command: str

    @property
    def counts(self) -> dict[str, int]:
        """Policies by status against the base: added, changed, removed, unchanged."""
        found = {"added": 0, "changed": 0, "removed": 0, "unchanged": 0}
        for f in self.comparison.files:
            found[f.status] = found.get(f.status, 0) + 1
        return found


def _changed_text(review: Review) -> str:
    counts = review.counts
    parts = [f"{counts[s]} {s}" for s in ("added", "changed", "removed") if counts[s]]
    return ", ".join(parts) or "no change"


def title(review: Review) -> str:
    return f"flowgen: network policies for {review.scope} ({_changed_text(review)})"


def window(first: datetime | None, last: datetime | None) -> str:
    if first is None or last is None:
        return "no evidence"
    return f"{first:%Y-%m-%d %H:%M} .. {last:%Y-%m-%d %H:%M} UTC ({span(last - first)})"


def span(delta: timedelta) -> str:
    """A duration in its two largest units: 3d 4h, 2h 5m, 25m 5s, 40s."""
    days, rest = divmod(max(0, int(delta.total_seconds())), 86400)
    hours, rest = divmod(rest, 3600)
    minutes, seconds = divmod(rest, 60)
    if days:
        return f"{days}d {hours}h"
    if hours:
        return f"{hours}h {minutes}m"
    return f"{minutes}m {seconds}s" if minutes else f"{seconds}s"


def commit_message(review: Review) -> str:
    """The commit's message: a subject line, what changed, and the trailers that mark flowgen's commits."""
    changes = review.changes
    rules = (
        f"{len(changes.added)} allow rules added, {len(changes.status('narrowed'))} narrowed, "
        f"{len(changes.status('widened'))} widened, {len(changes.status('changed'))} changed, "
        f"{len(changes.removed)} removed"
    )
    return (
        f"flowgen: network policies for {review.scope}\n\n"
        f"Policies in {review.path}: {_changed_text(review)}; {rules}.\n"
        f"Evidence: {window(review.comparison.first, review.comparison.last)}.\n\n"
        f"{TRAILER}\nFlowgen-Branch: {review.branch}\n"
    )


def cell(text: str) -> str:
    """`text` safe in a Markdown table cell: no formatting, HTML, mentions or line breaks."""
    escaped = text
    for char in "\\|`*_[]#~":
        escaped = escaped.replace(char, "\\" + char)
    escaped = escaped.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;").replace("@", "&#64;")
    return escaped.replace("\r", " ").replace("\n", " ")


def code(text: str) -> str:
    """`text` as an inline code span (backticks and line breaks cannot end it early; a pipe
    cannot end a table cell). Nothing inside a code span formats, links or mentions."""
    if not text:
        return ""
    return "`" + text.replace("`", "'").replace("|", "\\|").replace("\r", " ").replace("\n", " ") + "`"


def _fence(text: str, language: str) -> list[str]:
    """A code block whose fence is longer than any run of backticks inside it."""
    longest, run = 0, 0
    for char in text:
        run = run + 1 if char == "`" else 0
        longest = max(longest, run)
    fence = "`" * max(3, longest + 1)
    return [f"{fence}{language}", text.rstrip("\n"), fence]


def _time(when: datetime | None) -> str:
    return f"{when:%Y-%m-%d %H:%M}" if when is not None else ""


def _lost(lost: Mapping[str, int] | None) -> str:
    if lost is None:
        return "not known (read from stdin)"
    total = sum(lost.values())
    if not total:
        return "none"
    sources = ", ".join(f"{count} {source}" for source, count in sorted(lost.items()) if count)
    return f"**{total}** ({cell(sources)}): flows may be missing from the evidence, and with them rules"


def _n(count: int, word: str) -> str:
    """`count` and `word`, plural unless one (words here take an s, or ies for y)."""
    if count == 1:
        return f"1 {word}"
    return f"{count} {word[:-1] + 'ies' if word.endswith('y') else word + 's'}"


def _verified(result: Verification, policies: int) -> str:
    requests, flows, proposed = _n(result.requests, "request"), _n(result.flows, "flow"), _n(policies, "policy")
    head = f"{requests} observed ({flows}) replayed against the {proposed} proposed"
    if not result.drops:
        return f"{head}: all admitted"
    return f"{head}: **{len(result.drops)} would be dropped** ({_n(result.dropped_flows, 'flow')})"


class _Rows:
    """Table rows with a cap (the body is shortened to fit the forge's limit)."""

    def __init__(self, cap: int | None) -> None:
        self.cap = cap

    def table(self, header: Sequence[str], rows: Sequence[str], align: str = "") -> list[str]:
        shown = rows if self.cap is None else rows[: self.cap]
        lines = ["| " + " | ".join(header) + " |", align or "|" + "---|" * len(header), *shown]
        if len(shown) < len(rows):
            lines.append(f"\n... and {len(rows) - len(shown)} more (the body was shortened to fit).")
        return lines


def _evidence_cells(evidence: RuleEvidence | None) -> str:
    if evidence is None or not evidence.flows:
        return "0 | | | "
    nodes = len(evidence.nodes)
    return f"{evidence.flows} | {_time(evidence.first)} | {_time(evidence.last)} | {nodes}"


def _allowance_row(allowance: Allowance, evidence: RuleEvidence | None) -> str:
    return f"| {code(allowance.rule)} | {code(allowance.allows)} | {_evidence_cells(evidence)} |"


def _drop_row(drop: Drop) -> str:
    what = f"{drop.protocol}/{drop.port}" + (f" {drop.l7}" if drop.l7 else "")
    why = f"denied by {', '.join(drop.denied_by)}" if drop.denied_by else f"no {' and '.join(drop.refused_by)} rule"
    return (
        f"| {code(drop.source)} | {code(drop.destination)} | {code(what)} | {drop.flows} | "
        f"{_time(drop.first)} | {_time(drop.last)} | {len(drop.nodes)} | {cell(why)} |"
    )


_DROP_HEADER = ("source", "destination", "request", "flows", "first seen", "last seen", "nodes", "why")
_DROP_ALIGN = "|---|---|---|---:|---|---|---:|---|"
_EVIDENCE_HEADER = ("rule", "allows", "flows", "first seen", "last seen", "nodes")
_EVIDENCE_ALIGN = "|---|---|---:|---|---|---:|"


def _summary(review: Review) -> list[str]:
    counts, changes, comparison = review.counts, review.changes, review.comparison
    policies = ", ".join(f"{counts[s]} {s}" for s in ("added", "changed", "removed", "unchanged"))
    rules = (
        f"{len(changes.added)} added, {len(changes.status('narrowed'))} narrowed, "
        f"{len(changes.status('widened'))} widened, {len(changes.status('changed'))} changed, "
        f"{len(changes.removed)} removed"
    )
    return [
        "| | |",
        "|---|---|",
        f"| Observation window | {window(comparison.first, comparison.last)} |",
        f"| Events Hubble lost | {_lost(review.lost)} |",
        f"| Policies in {code(review.path)} | {policies} |",
        f"| Allow rules | {rules} |",
        f"| Verify | {_verified(review.verification, review.policies)} |",
        f"| Policy-denied drops seen | {len(comparison.denied)} |",
        f"| Notes from generate | {len(review.notes)} |",
    ]


def _rules(review: Review, rows: _Rows) -> list[str]:
    changes = review.changes
    lines = ["", "### Added allow rules and the evidence behind them", ""]
    if changes.added:
        lines += rows.table(
            _EVIDENCE_HEADER,
            [_allowance_row(a, changes.evidence.get(a.rule)) for a in changes.added],
            _EVIDENCE_ALIGN,
        )
    else:
        lines.append("None.")
    if changes.changed:
        lines += ["", "### Narrowed, widened and changed rules", ""]
        lines += rows.table(
            ("change", "rule", "was", "now", "flows", "first seen", "last seen", "nodes"),
            [
                f"| {c.status} | {code(c.after.rule)} | {code(c.before.allows)} | {code(c.after.allows)} | "
                f"{_evidence_cells(changes.evidence.get(c.after.rule))} |"
                for c in changes.changed
            ],
            "|---|---|---|---|---:|---|---|---:|",
        )
    if changes.removed:
        unused = {u.rule for u in review.comparison.unused}
        lines += ["", "### Removed allow rules", ""]
        lines += rows.table(
            ("rule", "allowed", "used in the window"),
            [f"| {code(a.rule)} | {code(a.allows)} | {_used(a.rule in unused)} |" for a in changes.removed],
        )
    return lines


def _used(unused: bool) -> str:
    return "no" if unused else "yes (a rule of the proposal takes it over)"


def _traffic(review: Review, rows: _Rows) -> list[str]:
    comparison, result = review.comparison, review.verification
    lines: list[str] = []
    if comparison.needed:
        lines += ["", f"### Observed requests {code(review.base)} refuses today (the proposal admits them)", ""]
        lines += rows.table(_DROP_HEADER, [_drop_row(d) for d in comparison.needed], _DROP_ALIGN)
    lines += ["", "### Policy-denied drops seen", ""]
    if comparison.denied:
        lines.append("Hubble recorded these drops; the proposal does not allow them. Review whether they are wanted.")
        lines.append("")
        lines += rows.table(
            ("source", "destination", "request", "reason", "flows", "refused by"),
            [
                f"| {code(d.source)} | {code(d.destination)} | {code(f'{d.protocol}/{d.port} {d.l7}'.strip())} | "
                f"{code(d.drop_reason)} | {d.flows} | {cell('; '.join(d.attributed_to))} |"
                for d in comparison.denied
            ],
            "|---|---|---|---|---:|---|",
        )
    else:
        lines.append("None.")
    lines += ["", "### Verify: the proposed policies against the window's flows", ""]
    lines.append(_verified(result, review.policies) + ".")
    if result.drops:
        lines += ["", *rows.table(_DROP_HEADER, [_drop_row(d) for d in result.drops], _DROP_ALIGN)]
    if result.l7_unchecked:
        lines += ["", f"{result.l7_unchecked} connections passed at L4 on L7 ports without L7 detail to check."]
    lines.extend(f"- Not modelled: {cell(w)}" for w in result.warnings)
    return lines


def _notes(notes: Sequence[Note], rows: _Rows) -> list[str]:
    lines = ["", "### Notes from generate", ""]
    if not notes:
        return [*lines, "None: every observed flow of the selected workloads is covered by a rule."]
    by_kind: dict[str, list[Note]] = {}
    for note in notes:
        by_kind.setdefault(str(note.kind), []).append(note)
    for kind, group in by_kind.items():
        lines += [f"**{kind}** ({len(group)})", ""]
        shown = group if rows.cap is None else group[: rows.cap]
        lines.extend(f"- {cell(n.subject)}: {cell(n.message)}" for n in shown)
        if len(shown) < len(group):
            lines.append(f"- ... and {len(group) - len(shown)} more")
        lines.append("")
    return lines[:-1]


def _graph(review: Review) -> list[str]:
    lines = ["", f"### The observed graph of {cell(review.scope)}", ""]
    picture = mermaid(review.edges)
    arrows = sum(1 for line in picture.splitlines() if "-->" in line or "-.->" in line)
    if not review.edges:
        return [*lines, "No evidence to draw."]
    if arrows > MAX_ARROWS:
        return [*lines, f"Not drawn: {arrows} arrows are too many for one picture (`flowgen graph -o mermaid`)."]
    return [*lines, "Denied traffic is dashed.", "", *_fence(picture, "mermaid")]


def _diffs(review: Review) -> list[str]:
    files = [f for f in review.comparison.files if f.text]
    if not files:
        return []
    lines = ["", "<details>", f"<summary>Policy diffs ({_n(len(files), 'file')}, comments aside)</summary>", ""]
    for f in files:
        lines += [f"{code(f.name)} ({f.status})", "", *_fence(f.text, "diff"), ""]
    return [*lines, "</details>"]


def _render(review: Review, cap: int | None, diffs: bool) -> str:
    rows = _Rows(cap)
    lines = [
        f"{MARKER} branch={review.branch} -->",
        f"## {cell(title(review))}",
        "",
        f"Proposed by `flowgen propose` from the traffic Hubble observed: every allow rule below is backed by "
        f"observed flows. Review it and merge to apply it; the next run updates this pull request when the "
        f"evidence changes, and closes it when {code(review.base)} no longer needs it.",
        "",
        *_summary(review),
        *_rules(review, rows),
        *_traffic(review, rows),
        *_notes(review.notes, rows),
        *_graph(review),
    ]
    if diffs:
        lines += _diffs(review)
    elif any(f.text for f in review.comparison.files):
        lines += ["", "Policy diffs left out to fit the size limit: see the changed files."]
    lines += ["", "---", f"Regenerate: {code(review.command)}"]
    return "\n".join(lines) + "\n"


def body(review: Review, limit: int = BODY_LIMIT) -> str:
    """The pull request body, shortened to `limit` characters: first without the diffs (the
    forge shows them anyway), then with fewer table rows."""
    for cap, diffs in ((None, True), (None, False), (50, False), (10, False), (3, False)):
        text = _render(review, cap, diffs)
        if len(text) <= limit:
            return text
    cut = limit - 200
    return text[:cut].rsplit("\n", 1)[0] + "\n\n... (cut to fit the size limit; run `flowgen diff` for all of it)\n"


def review(
    *,
    scope: str,
    branch: str,
    base: str,
    path: str,
    edges: Sequence[Edge],
    existing: Sequence[Policy],
    proposed: Sequence[Policy],
    notes: tuple[Note, ...],
    namespaces: Sequence[str],
    version: Release = DEFAULT_RELEASE,
    samples: Mapping[tuple[object, ...], tuple[Sample, ...]] | None = None,
    lost: Mapping[str, int] | None = None,
    command: str = "flowgen propose",
) -> Review:
    """The review of going from the `existing` policies (the base branch's folder) to `proposed`
    (the folder after the change), for the evidence `edges` touching `namespaces`."""
    wanted = set(namespaces)
    return Review(
        scope=scope,
        branch=branch,
        base=base,
        path=path,
        comparison=compare(edges, existing, proposed, namespaces, version=version, samples=samples),
        changes=changes(existing, proposed, namespaces, edges),
        notes=notes,
        policies=len(proposed),
        verification=verify(edges, Engine(proposed, version=version), namespaces, samples),
        edges=[e for e in edges if not wanted or wanted & {e.source.namespace, e.destination.namespace}],
        lost=lost,
        command=command,
    )
