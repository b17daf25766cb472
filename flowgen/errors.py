"""The errors flowgen raises for problems a user can fix.

Every message names the bad value (file and line where there is one) and what
to do about it. The CLI prints them as `Error: ...` and exits 1; anything else
is a bug and keeps its traceback.
"""

from __future__ import annotations


class FlowgenError(Exception):
    """A problem with the user's input or environment, with a message that says how to fix it."""


class InputError(FlowgenError):
    """An input file or stream cannot be read."""


class MalformedInputError(InputError):
    """A record in an input could not be parsed (raised under --strict)."""

    def __init__(self, origin: str, line: int, reason: str) -> None:
        self.origin = origin
        self.line = line
        self.reason = reason
        super().__init__(
            f"reading {origin} line {line}: {reason}. "
            "Fix or remove that line, or run without --strict to skip malformed lines."
        )


class RelayError(FlowgenError):
    """Hubble Relay (or a Hubble server) cannot be reached, refuses the request, or TLS fails."""


class StoreError(FlowgenError):
    """The observation store cannot be read or written."""


class UsageError(FlowgenError):
    """A command-line value is not acceptable (exit code 2)."""
