"""What the command modules share: the output streams, the one error boundary, the common
options, and loading the observed evidence.

Only the standard library, typer and flowgen's light modules are imported here, so that
`flowgen --help` stays quick: the commands import pandas, pyarrow, grpc and the rest
when they run.
"""

from __future__ import annotations

import enum
import os
import re
import shlex
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, TextIO

import typer

from flowgen.cilium import DEFAULT_RELEASE, NEWEST_RELEASE, OLDEST_RELEASE, Release
from flowgen.cli.timespec import parse_since
from flowgen.errors import FlowgenError, UsageError

if TYPE_CHECKING:
    from flowgen.graph.observed import Observed

# Characters that could steer a terminal or hide text: C0 and C1 controls (ANSI/OSC escape
# sequences start with ESC or CSI), and the bidirectional overrides (Trojan Source).
_UNSAFE = re.compile("[\x00-\x08\x0b-\x1f\x7f-\x9f\u200e\u200f\u202a-\u202e\u2066-\u2069]")
_RED, _RESET = "\x1b[31m", "\x1b[0m"


def terminal_safe(text: str) -> str:
    """`text` with every character that could steer a terminal escaped (\\x1b, \\u202e);
    line breaks and tabs stay. Label values, paths and names come from workloads."""
    return _UNSAFE.sub(lambda match: match.group().encode("unicode_escape").decode("ascii"), text)


class Stream:
    """stdout or stderr as the commands print to it: one line per call, terminal-safe.
    The stream is looked up at each call (tests swap sys.stdout and sys.stderr)."""

    def __init__(self, *, stderr: bool) -> None:
        self._stderr = stderr

    @property
    def file(self) -> TextIO:
        return sys.stderr if self._stderr else sys.stdout

    @property
    def is_terminal(self) -> bool:
        return self.file.isatty()

    def print(self, text: str = "") -> None:
        self.file.write(terminal_safe(text) + "\n")

    def error(self, text: str) -> None:
        """`Error: text`, the label in red on a terminal that wants colour."""
        label = f"{_RED}Error:{_RESET}" if self.is_terminal and "NO_COLOR" not in os.environ else "Error:"
        self.file.write(f"{label} {terminal_safe(text)}\n")


err = Stream(stderr=True)
out = Stream(stderr=False)


def write(text: str) -> None:
    """Write a report meant to be read (text, Markdown) to stdout, terminal-safe."""
    sys.stdout.write(terminal_safe(text))


def warn(message: str) -> None:
    err.print(f"Warning: {message}")


@contextmanager
def errors_boundary() -> Iterator[None]:
    """The one error boundary: expected failures print `Error: ...` and exit 1 (usage errors 2)."""
    try:
        yield
    except UsageError as problem:
        err.error(str(problem))
        raise typer.Exit(2) from None
    except FlowgenError as problem:
        err.error(str(problem))
        raise typer.Exit(1) from None
    except KeyboardInterrupt:
        err.print("Interrupted.")
        raise typer.Exit(130) from None


def default_store() -> Path:
    import platformdirs  # noqa: PLC0415 - only when a store is used

    return Path(platformdirs.user_data_dir("flowgen")) / "store"


StoreOption = Annotated[
    Path | None,
    typer.Option(
        "--store",
        envvar="FLOWGEN_STORE",
        metavar="DIR",
        help="Observation store directory (default: flowgen/store under the user data directory).",
        show_default=False,
    ),
]
NamespaceOption = Annotated[
    list[str] | None,
    typer.Option("--namespace", "-n", metavar="NS", help="Only flows with an endpoint in this namespace (repeatable)."),
]
InputOption = Annotated[
    list[str] | None,
    typer.Option(
        "--input-file",
        "-i",
        metavar="FILE",
        help="Hubble JSON lines to read (hubble observe -o json, exporter files, .gz); "
        "repeat for several files, or quote a pattern ('dir/**/*.jsonl.gz'); - reads stdin.",
    ),
]
AllowPartialOption = Annotated[
    bool,
    typer.Option("--allow-partial", help="Work from the readable part of a store with damaged files (else an error)."),
]
SinceOption = Annotated[
    str | None,
    typer.Option("--since", metavar="WHEN", help="Only flows since this time: a duration back (7d, 1h) or RFC 3339."),
]


def observed(
    input_file: list[str] | None,
    store: Path | None,
    since: str | None,
    *,
    namespaces: list[str] | None = None,
    allow_partial: bool = False,
    samples: bool = False,
) -> Observed:
    """The observed evidence: built from flow files when given, else read from the store.
    An error when nothing touches `namespaces` or nothing is left after --since."""
    from flowgen.graph.observed import load  # noqa: PLC0415 - pandas and pyarrow, only when needed

    since_at = parse_since(since, "--since", datetime.now(UTC)) if since else None
    return load(
        input_file,
        store or default_store(),
        since_at,
        warn=warn,
        samples=samples,
        namespaces=namespaces or (),
        allow_partial=allow_partial,
    )


class CiliumRelease(enum.StrEnum):
    auto = "auto"


def parse_release(text: str) -> Release:
    if text == CiliumRelease.auto:
        from flowgen.policy.cluster import cluster_cilium_version  # noqa: PLC0415

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


DEFAULT_RELEASE_TEXT = _release(DEFAULT_RELEASE)
CiliumVersionOption = Annotated[
    str,
    typer.Option(
        "--cilium-version",
        metavar="RELEASE",
        help=f"Policy language of this Cilium release ({_release(OLDEST_RELEASE)} ... "
        f"{_release(NEWEST_RELEASE)}), or auto (ask the cluster).",
    ),
]


def command_line(context: typer.Context) -> str:
    """The running command with the options that differ from their defaults, in a canonical
    order (for the header that says how to regenerate a file; deterministic, unlike argv)."""
    words = ["flowgen", context.info_name or ""]
    for param in context.command.params:
        value = context.params.get(param.name or "")
        # Only what was typed: defaults and environment variables (FLOWGEN_STORE) are not repeated.
        if param.param_type_name != "option" or not typed(context, param.name or ""):
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


def typed(context: typer.Context, name: str) -> bool:
    """Whether an option was given on the command line (not a default or an environment variable)."""
    source = context.get_parameter_source(name)
    return source is not None and source.name == "COMMANDLINE"
