"""The flowgen app: its commands are registered here in pipeline order."""

from __future__ import annotations

from typing import Annotated

import typer

from flowgen import __version__
from flowgen.cli.console import out
from flowgen.cli.graph import graph
from flowgen.cli.observe import observe
from flowgen.cli.policy import diff, generate, verify

app = typer.Typer(
    name="flowgen",
    help="Learn least-privilege CiliumNetworkPolicies from Hubble flows.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_show_locals=False,
)


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


# `flowgen --help` lists the pipeline in order.
for command in (observe, graph, generate, verify, diff):
    app.command()(command)
