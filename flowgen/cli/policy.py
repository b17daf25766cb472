"""The policy commands: generate, verify, diff (registered on the app by cli.py)."""

from __future__ import annotations

import enum
import sys
from pathlib import Path
from typing import Annotated

import orjson
import typer

from flowgen.check.diff import compare
from flowgen.check.engine import Engine, Mode
from flowgen.check.report import (
    comparison_json,
    comparison_markdown,
    comparison_text,
    notes_json,
    notes_markdown,
    verification_json,
    verification_markdown,
    verification_text,
)
from flowgen.check.verify import verify as replay
from flowgen.cilium import DEFAULT_DENY_SWITCH
from flowgen.cli.console import (
    InputOption,
    NamespaceOption,
    SinceOption,
    StoreOption,
    command_line,
    err,
    errors_boundary,
    observed,
    parse_release,
)
from flowgen.cli.timespec import parse_duration
from flowgen.errors import FlowgenError, InputError, UsageError
from flowgen.policy.cluster import cluster_policies
from flowgen.policy.folder import read_policies, write_policies
from flowgen.policy.model import Policy
from flowgen.policy.render import dump
from flowgen.policy.validation import validate
from flowgen.synth.notes import Note, Proposal
from flowgen.synth.synth import L7Mode, Options, WorldMode, synthesize

# How many notes of one kind generate prints (all go to --report).
SHOWN_NOTES = 10


def generate(
    context: typer.Context,
    namespace: Annotated[
        list[str] | None,
        typer.Option("--namespace", "-n", help="Generate policies for the workloads of this namespace (repeatable)."),
    ] = None,
    all_namespaces: Annotated[
        bool, typer.Option("--all-namespaces", "-A", help="Generate for every namespace seen.")
    ] = False,
    input_file: InputOption = None,
    store: StoreOption = None,
    since: SinceOption = None,
    output: Annotated[
        str, typer.Option("--output", "-o", help="Directory for one file per policy + kustomization.yaml; - prints.")
    ] = "-",
    cilium_version: Annotated[
        str,
        typer.Option("--cilium-version", help="Policy language of this Cilium release (1.16 ... 1.20), or auto."),
    ] = "1.19",
    l7: Annotated[L7Mode, typer.Option("--l7", help="Which L7 rules to write where L7 was seen.")] = L7Mode.ALL,
    world: Annotated[
        WorldMode, typer.Option("--world", help="Egress to outside addresses without a DNS name: /32 CIDRs or world.")
    ] = WorldMode.CIDR,
    world_clients: Annotated[
        int, typer.Option(help="Distinct outside clients on a port from which ingress allows the world entity.", min=1)
    ] = 5,
    dns_collapse: Annotated[
        int, typer.Option(help="DNS names under one parent past which they collapse to *.parent.", min=1)
    ] = 10,
    path_collapse: Annotated[
        int, typer.Option(help="HTTP paths per peer, port and method past which they collapse by prefix.", min=1)
    ] = 20,
    min_flows: Annotated[int, typer.Option(help="Report workloads with fewer flows than this.", min=0)] = 10,
    min_span: Annotated[str, typer.Option(help="Report workloads observed for less than this.")] = "1h",
    default_deny: Annotated[
        bool, typer.Option("--default-deny", help="Add a per-namespace default deny that still allows DNS.")
    ] = False,
    clusterwide: Annotated[
        bool, typer.Option("--clusterwide", help="Add cluster-wide baselines (DNS for every pod, probes from host).")
    ] = False,
    report: Annotated[
        Path | None, typer.Option("--report", help="Also write the notes to this file (.md Markdown or .json).")
    ] = None,
) -> None:
    """Generate least-privilege CiliumNetworkPolicies from the observed graph.

    One policy per observed workload, with ingress and egress rules for what was
    seen and nothing else. Everything the evidence did not turn into a rule is
    listed on stderr (and in --report).

    Example:

        flowgen generate -n shop --store /tmp/flowgen-store --output policies/

        flowgen generate -A -i fixtures/flows/demo.jsonl --default-deny
    """
    with errors_boundary():
        if not namespace and not all_namespaces:
            raise UsageError("say which workloads to generate for: -n NAMESPACE (repeatable) or -A")
        version = parse_release(cilium_version)
        options = Options(
            version=version,
            l7=l7,
            world=world,
            world_clients=world_clients,
            dns_collapse=dns_collapse,
            path_collapse=path_collapse,
            min_flows=min_flows,
            min_span=parse_duration(min_span, "--min-span"),
            default_deny=default_deny,
            clusterwide=clusterwide,
            command=command_line(context),
        )
        if clusterwide and version < DEFAULT_DENY_SWITCH:
            raise UsageError("--clusterwide needs Cilium 1.16 or later (enableDefaultDeny)")
        proposal = synthesize(
            observed(input_file, store, since).edges(), [] if all_namespaces else namespace or [], options
        )
        problems = [problem for p in proposal.policies for problem in validate(p, version)]
        if problems:
            raise FlowgenError(
                "a generated policy would be rejected by Cilium (a flowgen bug; please report it with the "
                "flows):\n  " + "\n  ".join(problems)
            )
        if output == "-":
            sys.stdout.write(dump(proposal.policies))
        else:
            written = write_policies(Path(output), proposal.policies)
            err.print(f"Wrote {len(proposal.policies)} policies and kustomization.yaml to {output} ({written})")
        _print_notes(proposal.notes)
        if report is not None:
            _write_report(report, proposal)


def _warn_invalid(policies: list[Policy], version: tuple[int, int]) -> None:
    """Existing policies Cilium would refuse are still evaluated as written, with a warning:
    in a cluster they would not be enforced at all."""
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


FormatOption = Annotated[ReportFormat, typer.Option("--format", "-f", help="Report format.")]
ExitCodeOption = Annotated[
    bool, typer.Option("--exit-code", help="Exit 1 when anything would be dropped or differs (for CI gates).")
]


def verify(
    policies: Annotated[
        list[Path],
        typer.Option("--policies", "-p", help="Policy YAML files or folders (repeatable; CNP and CCNP)."),
    ],
    input_file: InputOption = None,
    store: StoreOption = None,
    namespace: NamespaceOption = None,
    since: SinceOption = None,
    cilium_version: Annotated[str, typer.Option("--cilium-version", help="Cilium release (1.16 ... 1.20).")] = "1.19",
    mode: Annotated[Mode, typer.Option("--mode", help="Cilium's policy enforcement mode.")] = Mode.DEFAULT,
    format: FormatOption = ReportFormat.text,
    exit_code: ExitCodeOption = False,
) -> None:
    """Replay observed requests against policies and report what they would drop.

    Nothing is applied anywhere: flowgen decides offline, the way Cilium would,
    and says which rule refuses each request. DNS lookups that would be refused
    are listed on their own (names behind toFQDNs rules would stop resolving).

    Example:

        flowgen verify --policies policies/ --input-file fixtures/flows/demo.jsonl

        flowgen verify -p policies/ --store /tmp/flowgen-store -n shop --format markdown --exit-code
    """
    with errors_boundary():
        version = parse_release(cilium_version)
        existing, skipped = read_policies(policies)
        for message in skipped:
            err.print(f"Note: {message}")
        _warn_invalid(existing, version)
        # From flow files each request is replayed with its endpoints' full labels; from the store, the graph.
        evidence = observed(input_file, store, since, samples=True)
        engine = Engine(existing, mode=mode, version=version)
        result = replay(evidence.edges(), engine, namespace or (), evidence.samples)
        if format is ReportFormat.json:
            sys.stdout.write(
                orjson.dumps(verification_json(result, len(existing)), option=orjson.OPT_INDENT_2).decode()
            )
            sys.stdout.write("\n")
        elif format is ReportFormat.markdown:
            sys.stdout.write(verification_markdown(result, len(existing)))
        else:
            sys.stdout.write(verification_text(result, len(existing)))
        if exit_code and result.drops:
            raise typer.Exit(1)


def diff(
    context: typer.Context,
    existing: Annotated[
        list[Path] | None,
        typer.Option("--existing", "-e", help="Existing policy YAML files or folders (a GitOps folder; repeatable)."),
    ] = None,
    from_cluster: Annotated[
        bool, typer.Option("--from-cluster", help="Read the existing CNPs and CCNPs from the cluster (kubectl).")
    ] = False,
    kube_context: Annotated[str | None, typer.Option("--context", help="kubectl context for --from-cluster.")] = None,
    namespace: NamespaceOption = None,
    all_namespaces: Annotated[bool, typer.Option("--all-namespaces", "-A", help="Every namespace seen.")] = False,
    input_file: InputOption = None,
    store: StoreOption = None,
    since: SinceOption = None,
    cilium_version: Annotated[str, typer.Option("--cilium-version", help="Cilium release (1.16 ... 1.20).")] = "1.19",
    l7: Annotated[L7Mode, typer.Option("--l7", help="L7 rules in the proposal.")] = L7Mode.ALL,
    default_deny: Annotated[
        bool, typer.Option("--default-deny", help="The proposal includes per-namespace default deny.")
    ] = False,
    format: FormatOption = ReportFormat.text,
    exit_code: ExitCodeOption = False,
) -> None:
    """Compare existing policies with what the observed traffic needs and with the proposal.

    Reports allowances the traffic needs that no existing policy grants, existing
    allow rules no observed request used in the window, policy-denied drops with
    the policies behind them, and a YAML diff per policy against what
    `flowgen generate` would write.

    Example:

        flowgen diff --existing gitops/policies/ -n shop --input-file fixtures/flows/demo.jsonl

        flowgen diff --from-cluster --context prod -A --store /tmp/flowgen-store --format markdown
    """
    with errors_boundary():
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
        evidence = observed(input_file, store, since, samples=True)
        scope = [] if all_namespaces else namespace or []
        options = Options(version=version, l7=l7, default_deny=default_deny, command=command_line(context))
        proposal = synthesize(evidence.edges(), scope, options)
        comparison = compare(
            evidence.edges(), current, proposal.policies, scope, version=version, samples=evidence.samples
        )
        if format is ReportFormat.json:
            sys.stdout.write(orjson.dumps(comparison_json(comparison), option=orjson.OPT_INDENT_2).decode() + "\n")
        elif format is ReportFormat.markdown:
            sys.stdout.write(comparison_markdown(comparison))
        else:
            sys.stdout.write(comparison_text(comparison))
        if exit_code and comparison.changed:
            raise typer.Exit(1)
