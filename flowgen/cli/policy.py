"""The policy commands: generate, verify, diff. The library is imported when a command runs."""

from __future__ import annotations

import enum
import sys
from collections import Counter
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import orjson
import typer

from flowgen.cilium import DEFAULT_DENY_SWITCH, Mode, Release
from flowgen.cli.console import (
    DEFAULT_RELEASE_TEXT,
    AllowPartialOption,
    CiliumVersionOption,
    InputOption,
    NamespaceOption,
    SinceOption,
    StoreOption,
    command_line,
    err,
    errors_boundary,
    observed,
    parse_release,
    write,
)
from flowgen.cli.timespec import parse_duration
from flowgen.errors import InputError, UsageError
from flowgen.synth.notes import NoteKind
from flowgen.synth.options import L7Mode, Scope, WorldMode

if TYPE_CHECKING:
    from flowgen.check.engine import Engine
    from flowgen.graph.observed import Observed
    from flowgen.policy.model import Policy
    from flowgen.synth.notes import Note, Proposal

# generate's exit status when evidence had to be left out (README "Bad input").
INCOMPLETE = 3
# Notes that mean observed evidence was left out of the output.
LEFT_OUT = frozenset({NoteKind.UNUSABLE_VALUE, NoteKind.BAD_PORT, NoteKind.REJECTED})
# How many notes of one kind generate prints (all go to --report).
SHOWN_NOTES = 10


AllNamespacesOption = Annotated[
    bool,
    typer.Option(
        "--all-namespaces",
        "-A",
        help="Every namespace seen except kube-system, kube-public and kube-node-lease; -n adds namespaces to it.",
    ),
]
DefaultDenyOption = Annotated[
    bool,
    typer.Option(
        "--default-deny", help="Add a default deny per namespace in scope; it allows nothing (see --wide-dns)."
    ),
]
WideDnsOption = Annotated[
    bool,
    typer.Option(
        "--wide-dns",
        help="Let the baselines allow every pod to look up any name through the cluster DNS; this lifts each "
        "workload's own name list.",
    ),
]


ModeOption = Annotated[
    Mode,
    typer.Option(
        "--mode",
        metavar="MODE",
        help="Cilium's policy enforcement mode in the cluster (agent enable-policy): default, always, never.",
    ),
]


def _loaded(scope: Scope) -> list[str]:
    """The namespaces to load evidence for: all of them under -A."""
    return [] if scope.all_namespaces else sorted(scope.named)


class PolicyFormat(enum.StrEnum):
    yaml = "yaml"
    json = "json"


def generate(
    context: typer.Context,
    namespace: Annotated[
        list[str] | None,
        typer.Option(
            "--namespace",
            "-n",
            metavar="NS",
            help="Generate policies for the workloads of this namespace (repeatable).",
        ),
    ] = None,
    all_namespaces: AllNamespacesOption = False,
    input_file: InputOption = None,
    store: StoreOption = None,
    since: SinceOption = None,
    allow_partial: AllowPartialOption = False,
    output: Annotated[
        PolicyFormat,
        typer.Option(
            "--output",
            "-o",
            metavar="FORMAT",
            help="Print the policies as yaml (a multi-document stream) or json (one List).",
        ),
    ] = PolicyFormat.yaml,
    output_dir: Annotated[
        Path | None,
        typer.Option(
            "--output-dir",
            "-d",
            metavar="DIR",
            help="Write one file per policy and a kustomization.yaml into DIR (replaced whole) instead.",
        ),
    ] = None,
    cilium_version: CiliumVersionOption = DEFAULT_RELEASE_TEXT,
    l7: Annotated[
        L7Mode,
        typer.Option("--l7", metavar="WHICH", help="Which L7 rules to write where L7 was seen: all, http or none."),
    ] = L7Mode.ALL,
    world: Annotated[
        WorldMode,
        typer.Option(
            "--world",
            metavar="AS",
            help="Egress to outside addresses without a DNS name: cidr (/32 rules) or entity (world).",
        ),
    ] = WorldMode.CIDR,
    world_networks: Annotated[
        int,
        typer.Option(
            metavar="N",
            help="Public client networks (/24, /48) on a port from which its ingress allows the world entity "
            "(an open population); fewer stay fromCIDR.",
            min=1,
        ),
    ] = 3,
    dns_collapse: Annotated[
        int, typer.Option(metavar="N", help="DNS names under one parent past which they collapse to *.parent.", min=1)
    ] = 10,
    path_collapse: Annotated[
        int,
        typer.Option(
            metavar="N", help="HTTP paths per peer, port and method past which they collapse by prefix.", min=1
        ),
    ] = 20,
    min_flows: Annotated[
        int, typer.Option(metavar="N", help="Report workloads with fewer flows than this.", min=0)
    ] = 10,
    min_span: Annotated[
        str, typer.Option(metavar="DURATION", help="Report workloads observed for less than this.")
    ] = "1h",
    default_deny: DefaultDenyOption = False,
    clusterwide: Annotated[
        bool,
        typer.Option(
            "--clusterwide",
            help="Add cluster-wide baselines that switch no default deny on: the node may reach every pod "
            "(kubelet probes); with --wide-dns also DNS for every pod.",
        ),
    ] = False,
    wide_dns: WideDnsOption = False,
    report: Annotated[
        Path | None,
        typer.Option("--report", metavar="FILE", help="Also write the notes to this file (.md Markdown or .json)."),
    ] = None,
    strict: Annotated[
        bool,
        typer.Option(
            "--strict",
            help=f"Exit {INCOMPLETE} when any observed value had to be left out (an unusable name, port or "
            "label); without it only a policy left out whole does.",
        ),
    ] = False,
) -> None:
    """Generate least-privilege CiliumNetworkPolicies from the observed graph.

    One policy per observed workload, with ingress and egress rules for what was
    seen and nothing else. Everything the evidence did not turn into a rule is
    listed on stderr (and in --report).

    Example:

    \b
        flowgen generate -n shop --store /tmp/flowgen-store -d policies/
        flowgen generate -A -i fixtures/flows/demo.jsonl --default-deny
    """
    with errors_boundary():
        from flowgen.policy.folder import write_policies  # noqa: PLC0415
        from flowgen.policy.render import dump, to_document  # noqa: PLC0415
        from flowgen.synth.options import Options  # noqa: PLC0415
        from flowgen.synth.synth import synthesize  # noqa: PLC0415

        if not namespace and not all_namespaces:
            raise UsageError("say which workloads to generate for: -n NAMESPACE (repeatable) or -A")
        version = parse_release(cilium_version)
        options = Options(
            version=version,
            l7=l7,
            world=world,
            world_networks=world_networks,
            dns_collapse=dns_collapse,
            path_collapse=path_collapse,
            min_flows=min_flows,
            min_span=parse_duration(min_span, "--min-span"),
            default_deny=default_deny,
            clusterwide=clusterwide,
            wide_dns=wide_dns,
            command=command_line(context),
        )
        if output_dir is not None and output is PolicyFormat.json:
            raise UsageError(
                "--output-dir writes YAML files (each starts with the command that regenerates it); "
                "leave out -o json, or print a JSON List with -o json and no --output-dir"
            )
        if clusterwide and version < DEFAULT_DENY_SWITCH:
            raise UsageError("--clusterwide needs Cilium 1.16 or later (enableDefaultDeny)")
        if wide_dns and not (default_deny or clusterwide):
            raise UsageError("--wide-dns widens the baselines: give it with --default-deny or --clusterwide")
        scope = Scope.of(namespace or [], all_namespaces=all_namespaces)
        evidence = observed(input_file, store, since, namespaces=_loaded(scope), allow_partial=allow_partial)
        proposal = synthesize(evidence.edges(), scope, options)
        if output_dir is not None:
            written = write_policies(output_dir, proposal.policies)
            err.print(f"Wrote {len(proposal.policies)} policies and kustomization.yaml to {output_dir} ({written})")
        elif output is PolicyFormat.json:
            documents = [to_document(policy) for policy in proposal.policies]
            sys.stdout.write(orjson.dumps({"apiVersion": "v1", "kind": "List", "items": documents}).decode() + "\n")
        else:
            sys.stdout.write(dump(proposal.policies))
        _print_notes(proposal.notes)
        if report is not None:
            _write_report(report, proposal)
        left_out = Counter(n.kind for n in proposal.notes if n.kind in LEFT_OUT)
        if left_out[NoteKind.REJECTED] or (strict and left_out):
            said = ", ".join(f"{count} {kind}" for kind, count in sorted(left_out.items()))
            err.print(f"Incomplete: evidence was left out ({said}); see the notes above")
            raise typer.Exit(INCOMPLETE)


def _warn_invalid(policies: list[Policy], version: Release) -> None:
    """Existing policies Cilium would refuse are still evaluated as written, with a warning:
    in a cluster they would not be enforced at all."""
    from flowgen.policy.validation import validate  # noqa: PLC0415

    for policy in policies:
        for problem in validate(policy, version):
            err.print(f"Warning: Cilium would reject this, so it would not be enforced: {problem}")


def _print_notes(notes: tuple[Note, ...]) -> None:
    if not notes:
        err.print("Notes: none; every observed flow of the selected workloads is covered by a rule.")
        return
    by_kind: dict[str, list[Note]] = {}
    for note in notes:
        by_kind.setdefault(str(note.kind), []).append(note)
    err.print(f"Notes ({len(notes)}): what the evidence did not turn into a rule, and what to review")
    for kind, group in by_kind.items():
        err.print(f"  {kind} ({len(group)}):")
        # The same message for several subjects is printed once, naming them all.
        by_message: dict[str, list[str]] = {}
        for note in group:
            by_message.setdefault(note.message, []).append(note.subject)
        lines = [f"{', '.join(subjects)}: {message}" for message, subjects in by_message.items()]
        for line in lines[:SHOWN_NOTES]:
            err.print(f"    {line}")
        if len(lines) > SHOWN_NOTES:
            err.print(f"    ... and {len(lines) - SHOWN_NOTES} more (see --report)")


def _write_report(path: Path, proposal: Proposal) -> None:
    from flowgen.check.report import notes_json, notes_markdown  # noqa: PLC0415

    if path.suffix == ".json":
        text = orjson.dumps(notes_json(proposal), option=orjson.OPT_INDENT_2).decode() + "\n"
    else:
        text = notes_markdown(proposal)
    try:
        path.write_text(text)
    except OSError as problem:
        raise InputError(f"cannot write --report {path}: {problem.strerror}") from None


class ReportFormat(enum.StrEnum):
    text = "text"
    markdown = "markdown"
    json = "json"


FormatOption = Annotated[
    ReportFormat,
    typer.Option("--output", "-o", "--format", "-f", metavar="FORMAT", help="Report format: text, markdown, json."),
]
ExitCodeOption = Annotated[
    bool, typer.Option("--exit-code", help="Exit 1 when anything would be dropped or differs (for CI gates).")
]


def verify(
    policies: Annotated[
        list[Path],
        typer.Option(
            "--policies", "-p", metavar="PATH", help="Policy YAML files or folders (repeatable; CNP and CCNP)."
        ),
    ],
    input_file: InputOption = None,
    store: StoreOption = None,
    namespace: NamespaceOption = None,
    since: SinceOption = None,
    allow_partial: AllowPartialOption = False,
    cilium_version: CiliumVersionOption = DEFAULT_RELEASE_TEXT,
    mode: ModeOption = Mode.DEFAULT,
    output: FormatOption = ReportFormat.text,
    exit_code: ExitCodeOption = False,
    probes: Annotated[
        bool,
        typer.Option(
            "--probes",
            help="Replay near-miss requests no evidence supports instead, and report those the policies would "
            "allow, by class (with --exit-code: exit 1 when any is allowed).",
        ),
    ] = False,
) -> None:
    """Replay observed requests against policies and report what they would drop.

    Nothing is applied anywhere: flowgen decides offline, the way Cilium would,
    and says which rule refuses each request. DNS lookups that would be refused
    are listed on their own (names behind toFQDNs rules would stop resolving).
    With --probes it measures the other half of least privilege: requests next
    to the observed ones (another port, method, path, name, topic, pod) that
    should be refused (docs/verify.md).

    Example:

    \b
        flowgen verify -p policies/ -i fixtures/flows/demo.jsonl
        flowgen verify -p policies/ -n shop -o markdown --exit-code
        flowgen verify --probes -p policies/ -i fixtures/flows/demo.jsonl
    """
    with errors_boundary():
        from flowgen.check.engine import Engine  # noqa: PLC0415
        from flowgen.check.report import verification_json, verification_markdown, verification_text  # noqa: PLC0415
        from flowgen.check.verify import verify as replay  # noqa: PLC0415
        from flowgen.policy.folder import read_policies  # noqa: PLC0415

        version = parse_release(cilium_version)
        existing, skipped = read_policies(policies)
        for message in skipped:
            err.print(f"Note: {message}")
        if not existing:
            raise InputError(
                f"no CiliumNetworkPolicy or CiliumClusterwideNetworkPolicy in {', '.join(map(str, policies))}: "
                "nothing to verify. Check --policies (files or folders with the policies' YAML)"
            )
        _warn_invalid(existing, version)
        # From flow files each request is replayed with its endpoints' full labels; from the store, the graph.
        evidence = observed(input_file, store, since, namespaces=namespace, allow_partial=allow_partial, samples=True)
        engine = Engine(existing, mode=mode, version=version)
        result = replay(evidence.edges(), engine, namespace or (), evidence.samples)
        if probes:
            _verify_probes(
                evidence, existing, engine, namespace or [], result.requests, len(result.drops), output, exit_code
            )
            return
        if output is ReportFormat.json:
            sys.stdout.write(
                orjson.dumps(verification_json(result, len(existing)), option=orjson.OPT_INDENT_2).decode()
            )
            sys.stdout.write("\n")
        elif output is ReportFormat.markdown:
            write(verification_markdown(result, len(existing)))
        else:
            write(verification_text(result, len(existing)))
        if exit_code and result.drops:
            raise typer.Exit(1)


def _verify_probes(
    evidence: Observed,
    existing: list[Policy],
    engine: Engine,
    namespaces: list[str],
    observed_requests: int,
    dropped: int,
    output: ReportFormat,
    exit_code: bool,
) -> None:
    """verify --probes: derive the near-miss probes, replay them, print the report."""
    from flowgen.check.probes import derive, probe_scope  # noqa: PLC0415
    from flowgen.check.probes import replay as replay_probes  # noqa: PLC0415
    from flowgen.check.report import probes_json, probes_markdown, probes_text  # noqa: PLC0415

    edges = evidence.edges()
    scope, not_probed = probe_scope(edges, existing, namespaces)
    report = replay_probes(derive(edges, evidence.samples, scope), engine, scope, not_probed)
    report.observed, report.dropped = observed_requests, dropped
    if output is ReportFormat.json:
        sys.stdout.write(orjson.dumps(probes_json(report, len(existing)), option=orjson.OPT_INDENT_2).decode() + "\n")
    elif output is ReportFormat.markdown:
        write(probes_markdown(report, len(existing)))
    else:
        write(probes_text(report, len(existing)))
    if exit_code and report.allowed:
        raise typer.Exit(1)


def diff(
    context: typer.Context,
    existing: Annotated[
        list[Path] | None,
        typer.Option(
            "--existing",
            "-e",
            metavar="PATH",
            help="Existing policy YAML files or folders (a GitOps folder; repeatable).",
        ),
    ] = None,
    from_cluster: Annotated[
        bool, typer.Option("--from-cluster", help="Read the existing CNPs and CCNPs from the cluster (kubectl).")
    ] = False,
    kube_context: Annotated[
        str | None, typer.Option("--context", metavar="NAME", help="kubectl context for --from-cluster.")
    ] = None,
    namespace: NamespaceOption = None,
    all_namespaces: AllNamespacesOption = False,
    input_file: InputOption = None,
    store: StoreOption = None,
    since: SinceOption = None,
    allow_partial: AllowPartialOption = False,
    cilium_version: CiliumVersionOption = DEFAULT_RELEASE_TEXT,
    mode: ModeOption = Mode.DEFAULT,
    l7: Annotated[
        L7Mode, typer.Option("--l7", metavar="WHICH", help="L7 rules in the proposal: all, http or none.")
    ] = L7Mode.ALL,
    default_deny: DefaultDenyOption = False,
    wide_dns: WideDnsOption = False,
    output: FormatOption = ReportFormat.text,
    exit_code: ExitCodeOption = False,
) -> None:
    """Compare existing policies with what the observed traffic needs and with the proposal.

    Reports allowances the traffic needs that no existing policy grants, existing
    allow rules no observed request used in the window, policy-denied drops with
    the policies behind them, and a YAML diff per policy against what
    `flowgen generate` would write.

    Example:

    \b
        flowgen diff -e gitops/policies/ -n shop -i fixtures/flows/demo.jsonl
        flowgen diff --from-cluster --context prod -A -o markdown
    """
    with errors_boundary():
        from flowgen.check.diff import compare  # noqa: PLC0415
        from flowgen.check.report import comparison_json, comparison_markdown, comparison_text  # noqa: PLC0415
        from flowgen.policy.cluster import cluster_policies  # noqa: PLC0415
        from flowgen.policy.folder import read_policies  # noqa: PLC0415
        from flowgen.synth.options import Options  # noqa: PLC0415
        from flowgen.synth.synth import synthesize  # noqa: PLC0415

        if bool(existing) == from_cluster:
            raise UsageError("say where the existing policies are: --existing DIR (repeatable) or --from-cluster")
        if not namespace and not all_namespaces:
            raise UsageError("say which workloads to compare: -n NAMESPACE (repeatable) or -A")
        version = parse_release(cilium_version)
        if from_cluster:
            current, skipped = cluster_policies(kube_context)
        else:
            current, skipped = read_policies(existing or [])
        for message in skipped:
            err.print(f"Note: {message}")
        _warn_invalid(current, version)
        scope = Scope.of(namespace or [], all_namespaces=all_namespaces)
        evidence = observed(
            input_file, store, since, namespaces=_loaded(scope), allow_partial=allow_partial, samples=True
        )
        options = Options(
            version=version, l7=l7, default_deny=default_deny, wide_dns=wide_dns, command=command_line(context)
        )
        edges = evidence.edges()
        proposal = synthesize(edges, scope, options)
        namespaces = scope.within(p.namespace or "" for e in edges for p in (e.source, e.destination))
        comparison = compare(
            edges, current, proposal.policies, namespaces, version=version, mode=mode, samples=evidence.samples
        )
        if output is ReportFormat.json:
            sys.stdout.write(orjson.dumps(comparison_json(comparison), option=orjson.OPT_INDENT_2).decode() + "\n")
        elif output is ReportFormat.markdown:
            write(comparison_markdown(comparison))
        else:
            write(comparison_text(comparison))
        if exit_code and comparison.changed:
            raise typer.Exit(1)
