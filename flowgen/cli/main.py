"""The flowgen app: its commands are registered here in pipeline order."""

from __future__ import annotations

from typing import Annotated

import typer

import flowgen
from flowgen.cli.console import out
from flowgen.cli.graph import graph
from flowgen.cli.observe import observe
from flowgen.cli.policy import diff, generate, verify
from flowgen.cli.propose import propose

app = typer.Typer(
    name="flowgen",
    help="Learn least-privilege CiliumNetworkPolicies from Hubble flows.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_show_locals=False,
    # Plain help (click's): readable metavars, examples kept one command per line.
    rich_markup_mode=None,
    context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100},
)


def _version(value: bool) -> None:
    if value:
        out.print(f"flowgen {flowgen.__version__}")
        raise typer.Exit()


@app.callback()
def main(
    version: Annotated[
        bool, typer.Option("--version", callback=_version, is_eager=True, help="Show the version and exit.")
    ] = False,
) -> None:
    """Learn least-privilege CiliumNetworkPolicies from Hubble flows."""


# `flowgen --help` lists the pipeline in order.
for command, summary in (
    (observe, "Observe flows (from Hubble Relay or files) into the store."),
    (graph, "Show the observed communication graph."),
    (generate, "Generate least-privilege CiliumNetworkPolicies."),
    (verify, "Replay observed requests against policies: what would drop?"),
    (diff, "Compare existing policies with the evidence and the proposal."),
    (propose, "Propose the regenerated policies as a pull request."),
):
    app.command(short_help=summary)(command)
