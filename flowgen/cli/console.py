"""What the command modules share: the consoles, the one error boundary, the common
options, and loading the observed evidence."""

from __future__ import annotations

import enum
import shlex
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated

import platformdirs
import typer
from rich.console import Console
from rich.markup import escape

from flowgen.cilium import NEWEST_RELEASE, OLDEST_RELEASE, Release
from flowgen.cli.timespec import parse_since
from flowgen.errors import FlowgenError, UsageError
from flowgen.graph.observed import Observed, load
from flowgen.policy.cluster import cluster_cilium_version

# markup=False: messages carry user content (paths, file lines) that must print as is.
err = Console(stderr=True, highlight=False, soft_wrap=True, markup=False)
out = Console(highlight=False, soft_wrap=True, markup=False)


@contextmanager
def errors_boundary() -> Iterator[None]:
    """The one error boundary: expected failures print `Error: ...` and exit 1 (usage errors 2)."""
    try:
        yield
    except UsageError as problem:
        err.print(f"[red]Error:[/red] {escape(str(problem))}", markup=True)
        raise typer.Exit(2) from None
    except FlowgenError as problem:
        err.print(f"[red]Error:[/red] {escape(str(problem))}", markup=True)
        raise typer.Exit(1) from None
    except KeyboardInterrupt:
        err.print("Interrupted.")
        raise typer.Exit(130) from None


def default_store() -> Path:
    return Path(platformdirs.user_data_dir("flowgen")) / "store"


StoreOption = Annotated[
    Path | None,
    typer.Option(
        "--store",
        envvar="FLOWGEN_STORE",
        help="Observation store directory (default: flowgen/store under the user data directory).",
        show_default=False,
    ),
]
NamespaceOption = Annotated[
    list[str] | None,
    typer.Option("--namespace", "-n", help="Only flows with an endpoint in this namespace (repeatable)."),
]
InputOption = Annotated[
    list[str] | None,
    typer.Option(
        "--input-file",
        "-i",
        help="Hubble JSON lines to read (hubble observe -o json, exporter files, .gz); "
        "repeat for several files; - reads stdin.",
    ),
]
SinceOption = Annotated[
    str | None, typer.Option("--since", help="Only flows since this time: a duration back (7d, 1h) or RFC 3339.")
]


def observed(input_file: list[str] | None, store: Path | None, since: str | None, *, samples: bool = False) -> Observed:
    """The observed evidence: built from flow files when given, else read from the store."""
    since_at = parse_since(since, "--since", datetime.now(UTC)) if since else None
    return load(input_file, store or default_store(), since_at, warn=warn, samples=samples)


def warn(message: str) -> None:
    err.print(f"Warning: {message}")


class CiliumRelease(enum.StrEnum):
    auto = "auto"


def parse_release(text: str) -> Release:
    if text == CiliumRelease.auto:
        return cluster_cilium_version()
    parts = text.strip().lstrip("v").split(".")
    try:
        version = (int(parts[0]), int(parts[1]))
    except (IndexError, ValueError):
        raise UsageError(f"--cilium-version: {text!r} is not a release; write it like 1.19, or auto") from None
    if not OLDEST_RELEASE <= version <= NEWEST_RELEASE:
        raise UsageError(
            f"--cilium-version {text}: flowgen writes policies for Cilium {_release(OLDEST_RELEASE)} "
            f"to {_release(NEWEST_RELEASE)}"
        )
    return version


def _release(release: Release) -> str:
    return f"{release[0]}.{release[1]}"


def command_line(context: typer.Context) -> str:
    """The running command with the options that differ from their defaults, in a canonical
    order (for the header that says how to regenerate a file; deterministic, unlike argv)."""
    words = ["flowgen", context.info_name or ""]
    for param in context.command.params:
        value = context.params.get(param.name or "")
        source = context.get_parameter_source(param.name or "")
        # Only what was typed: defaults and environment variables (FLOWGEN_STORE) are not repeated.
        if param.param_type_name != "option" or source is None or source.name != "COMMANDLINE":
            continue
        if value == param.default or value in (None, [], ()):
            continue
        flag = max(param.opts, key=len)
        if getattr(param, "is_flag", False):
            words.append(flag)
            continue
        for item in value if isinstance(value, list | tuple) else [value]:
            words += [flag, shlex.quote(str(item.value if isinstance(item, enum.Enum) else item))]
    return " ".join(words)
