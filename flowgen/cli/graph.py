"""`flowgen graph`: the observed communication graph as a table, CSV, JSON, Mermaid or DOT."""

from __future__ import annotations

import enum
import sys
from typing import TYPE_CHECKING, Annotated

import typer

from flowgen.cli.console import (
    AllowPartialOption,
    InputOption,
    NamespaceOption,
    SinceOption,
    StoreOption,
    errors_boundary,
    observed,
    out,
    terminal_safe,
)

if TYPE_CHECKING:
    from flowgen.graph.edge import Edge


class GraphFormat(enum.StrEnum):
    table = "table"
    csv = "csv"
    json = "json"
    mermaid = "mermaid"
    dot = "dot"


def graph(
    input_file: InputOption = None,
    store: StoreOption = None,
    namespace: NamespaceOption = None,
    since: SinceOption = None,
    allow_partial: AllowPartialOption = False,
    output: Annotated[
        GraphFormat, typer.Option("--output", "-o", "--format", "-f", metavar="FORMAT", help="Output format.")
    ] = GraphFormat.table,
) -> None:
    """Show the observed communication graph, from the store or from flow files.

    One row (or arrow) per edge: source, destination, protocol/port, L7
    attribute, what the evidence said (allowed, audit, denied) and how often.
    Formats: table, csv, json, mermaid, dot.

    Example:

    \b
        flowgen graph --store /tmp/flowgen-store -n shop
        flowgen graph -i fixtures/flows/demo.jsonl -o mermaid > graph.mmd
    """
    with errors_boundary():
        import orjson  # noqa: PLC0415

        from flowgen.graph.views import dot, mermaid, records  # noqa: PLC0415

        evidence = observed(input_file, store, since, namespaces=namespace, allow_partial=allow_partial)
        found = evidence.graph.touching(namespace or ())
        if output is GraphFormat.csv:
            sys.stdout.write(found.csv())
        elif output is GraphFormat.mermaid:
            sys.stdout.write(mermaid(found.edges()))
        elif output is GraphFormat.dot:
            sys.stdout.write(dot(found.edges()))
        elif output is GraphFormat.json:
            sys.stdout.write(orjson.dumps(records(found.edges()), option=orjson.OPT_INDENT_2).decode() + "\n")
        else:
            _print_table(found.edges())


def _print_table(edges: list[Edge]) -> None:
    from rich.console import Console  # noqa: PLC0415
    from rich.table import Table  # noqa: PLC0415

    from flowgen.graph.views import TABLE_COLUMNS, table_rows  # noqa: PLC0415

    table = Table(box=None, header_style="bold", pad_edge=False)
    for column in TABLE_COLUMNS:
        table.add_column(column, justify="right" if column == "flows" else "left")
    for row in table_rows(edges):
        table.add_row(*(terminal_safe(cell) for cell in row))
    # Piped output is not cut to 80 columns: the table is as wide as its content.
    terminal = out.is_terminal
    console = Console(file=out.file, highlight=False, markup=False, width=None if terminal else 100_000)
    console.print(table)
    console.print(f"{len(edges)} edges")
