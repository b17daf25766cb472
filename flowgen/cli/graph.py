"""`flowgen graph`: the observed communication graph as a table, CSV, JSON, Mermaid or DOT."""

from __future__ import annotations

import enum
import sys
from typing import Annotated

import orjson
import typer
from rich.console import Console
from rich.table import Table

from flowgen.cli.console import InputOption, NamespaceOption, SinceOption, StoreOption, errors_boundary, observed, out
from flowgen.graph.edge import Edge
from flowgen.graph.views import TABLE_COLUMNS, dot, mermaid, records, table_rows


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
    format: Annotated[GraphFormat, typer.Option("--format", "-f", help="Output format.")] = GraphFormat.table,
) -> None:
    """Show the observed communication graph, from the store or from flow files.

    One row (or arrow) per edge: source, destination, protocol/port, L7
    attribute, what the evidence said (allowed, audit, denied) and how often.

    Example:

        flowgen graph --store /tmp/flowgen-store -n shop

        flowgen graph -i fixtures/flows/demo.jsonl --format mermaid > graph.mmd
    """
    with errors_boundary():
        found = observed(input_file, store, since).graph.touching(namespace or ())
        if format is GraphFormat.csv:
            sys.stdout.write(found.csv())
        elif format is GraphFormat.mermaid:
            sys.stdout.write(mermaid(found.edges()))
        elif format is GraphFormat.dot:
            sys.stdout.write(dot(found.edges()))
        elif format is GraphFormat.json:
            sys.stdout.write(orjson.dumps(records(found.edges()), option=orjson.OPT_INDENT_2).decode() + "\n")
        else:
            _print_table(found.edges())


def _print_table(edges: list[Edge]) -> None:
    table = Table(box=None, header_style="bold", pad_edge=False)
    for column in TABLE_COLUMNS:
        table.add_column(column, justify="right" if column == "flows" else "left")
    for row in table_rows(edges):
        table.add_row(*row)
    # Piped output is not cut to 80 columns: the table is as wide as its content.
    wide = out if out.is_terminal else Console(highlight=False, width=100_000, markup=False)
    wide.print(table)
    wide.print(f"{len(edges)} edges")
