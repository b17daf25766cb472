"""The flowgen command line: the only module that prints, reads the environment or exits."""

from __future__ import annotations

import enum
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Annotated

import orjson
import typer
from rich.console import Console

from flowgen import __version__
from flowgen.errors import FlowgenError
from flowgen.source import JsonLineReader, ReadReport, check_inputs, read_files
from flowgen.summary import FlowSummary, summarize

app = typer.Typer(
    name="flowgen",
    help="Learn least-privilege CiliumNetworkPolicies from Hubble flows.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_show_locals=False,
)
err = Console(stderr=True, highlight=False, soft_wrap=True)
out = Console(highlight=False, soft_wrap=True)

# How many malformed-line locations the text summary shows.
SHOWN_PROBLEMS = 5


class OutputFormat(enum.StrEnum):
    text = "text"
    json = "json"


def _version(value: bool) -> None:
    if value:
        out.print(f"flowgen {__version__}")
        raise typer.Exit()


@app.callback()
def main(
    version: Annotated[
        bool, typer.Option("--version", callback=_version, is_eager=True, help="Show the version and exit.")
    ] = False,
) -> None:
    """Learn least-privilege CiliumNetworkPolicies from Hubble flows."""


@contextmanager
def _errors() -> Iterator[None]:
    """The one error boundary: expected failures print `Error: ...` and exit 1."""
    try:
        yield
    except FlowgenError as problem:
        err.print(f"[red]Error:[/red] {problem}", markup=True)
        raise typer.Exit(1) from None
    except KeyboardInterrupt:
        err.print("Interrupted.")
        raise typer.Exit(130) from None


@app.command()
def observe(
    input_file: Annotated[
        list[str] | None,
        typer.Option(
            "--input-file",
            "-i",
            help="Hubble JSON lines to read (hubble observe -o json, exporter files, .gz); "
            "repeat for several files; - reads stdin.",
        ),
    ] = None,
    namespace: Annotated[
        list[str] | None,
        typer.Option("--namespace", "-n", help="Keep only flows with an endpoint in this namespace (repeatable)."),
    ] = None,
    strict: Annotated[bool, typer.Option(help="Stop at the first malformed line (exit 1).")] = False,
    output: Annotated[OutputFormat, typer.Option("--output", "-o", help="Summary format.")] = OutputFormat.text,
) -> None:
    """Read Hubble flows and summarize what was read.

    Example:

        flowgen observe --input-file fixtures/flows/demo.jsonl

        hubble observe -o json --last 1000 | flowgen observe -i -

    Streaming from Hubble Relay over gRPC (--server) is not built yet: export
    flows with `hubble observe -o json` or the Hubble exporter and pass the files.
    """
    with _errors():
        if not input_file:
            raise FlowgenError(
                "no input: pass --input-file FILE (or - for stdin). "
                "Reading live from Hubble Relay (--server) is not built yet"
            )
        check_inputs(input_file)
        report = ReadReport()
        reader = JsonLineReader(report, strict=strict, warn=lambda message: err.print(f"Warning: {message}"))
        summary = FlowSummary()
        for _flow in summarize(read_files(input_file, reader), summary, frozenset(namespace or ())):
            pass
        if output is OutputFormat.json:
            sys.stdout.write(orjson.dumps(_summary_json(input_file, report, summary)).decode() + "\n")
        else:
            _print_summary(input_file, report, summary)


def _summary_json(inputs: list[str], report: ReadReport, summary: FlowSummary) -> dict[str, object]:
    return {
        "inputs": inputs,
        "lines": report.lines,
        "flows": report.flows,
        "kept": summary.kept,
        "filtered_out": summary.filtered_out,
        "skipped": dict(sorted(report.skipped.items())),
        "malformed": report.malformed,
        "malformed_examples": [str(p) for p in report.problems],
        "lost_events": dict(sorted(report.lost_events.items())),
        "unknown_fields": report.unknown_fields,
        "first": summary.first.isoformat() if summary.first else None,
        "last": summary.last.isoformat() if summary.last else None,
        "namespaces": dict(sorted(summary.namespaces.items())),
        "verdicts": dict(sorted(summary.verdicts.items())),
        "drop_reasons": dict(sorted(summary.drop_reasons.items())),
        "nodes": sorted(summary.nodes),
    }


def _counts(counter: dict[str, int]) -> str:
    return ", ".join(f"{name} {count}" for name, count in sorted(counter.items())) or "none"


def _print_summary(inputs: list[str], report: ReadReport, summary: FlowSummary) -> None:
    out.print(f"Read {report.lines} records from {len(inputs)} input(s): {report.flows} flows")
    out.print(
        f"  kept:       {summary.kept}" + (f" ({summary.filtered_out} outside -n)" if summary.filtered_out else "")
    )
    out.print(f"  skipped:    {_counts(report.skipped)}")
    out.print(f"  malformed:  {report.malformed}")
    for problem in report.problems[:SHOWN_PROBLEMS]:
        out.print(f"              {problem}")
    if report.malformed > SHOWN_PROBLEMS:
        out.print(f"              ... and {report.malformed - SHOWN_PROBLEMS} more")
    lost = sum(report.lost_events.values())
    out.print(f"  lost:       {lost}" + (f" ({_counts(report.lost_events)})" if lost else ""))
    if lost:
        out.print("              Hubble dropped events before export: raise its buffer (hubble.eventBufferCapacity)")
    if report.unknown_fields:
        out.print(f"  ignored:    {', '.join(report.unknown_fields)} (unknown to this flowgen)")
    if summary.first and summary.last:
        out.print(
            f"  time:       {summary.first.isoformat()} .. {summary.last.isoformat()} ({summary.last - summary.first})"
        )
    out.print(f"  namespaces: {_counts(summary.namespaces)}")
    out.print(f"  verdicts:   {_counts(summary.verdicts)}")
    if summary.drop_reasons:
        out.print(f"  drops:      {_counts(summary.drop_reasons)}")
    out.print(f"  nodes:      {len(summary.nodes)}")
