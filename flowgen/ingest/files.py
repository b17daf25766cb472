"""Input files and stdin: which inputs can be read, gzip detected by content, lines to the JSON reader."""

from __future__ import annotations

import gzip
import sys
import typing
from collections.abc import Iterator, Sequence
from contextlib import ExitStack
from pathlib import Path
from typing import IO

from flowgen.errors import InputError
from flowgen.ingest.events import Lost
from flowgen.ingest.flow import Flow
from flowgen.ingest.jsonlines import JsonLineReader, ReadReport

STDIN = "-"

_GZIP_MAGIC = b"\x1f\x8b"


def check_inputs(paths: Sequence[str]) -> None:
    """Fail before reading anything when an input cannot be opened."""
    if not paths:
        raise InputError("no input given: pass --input-file FILE (or - for stdin)")
    if list(paths).count(STDIN) > 1:
        raise InputError("stdin (-) can be read only once; name it a single time")
    for name in paths:
        if name == STDIN:
            continue
        path = Path(name)
        if not path.exists():
            raise InputError(f"cannot read {name}: no such file. Check the path")
        if path.is_dir():
            raise InputError(f"cannot read {name}: it is a directory. Pass the files in it instead")


def _open(name: str, stack: ExitStack) -> IO[bytes]:
    if name == STDIN:
        stream: IO[bytes] = sys.stdin.buffer
    else:
        try:
            stream = stack.enter_context(Path(name).open("rb"))  # noqa: SIM115 - closed by the stack
        except OSError as err:
            raise InputError(f"cannot read {name}: {err.strerror}") from err
    peek = getattr(stream, "peek", None)
    head = peek(2)[:2] if peek is not None else b""
    if head == _GZIP_MAGIC:
        return typing.cast(IO[bytes], stack.enter_context(gzip.GzipFile(fileobj=stream, mode="rb")))
    return stream


class FileSource:
    """Hubble JSON files as a flow source (flowgen.ingest.events.Source): the flows and
    lost-event notices of each file in turn. "-" is stdin; gzip is detected by content.
    Inputs are checked when the source is made, before anything is read; what the reader
    met besides flows (skipped records, malformed lines) is in `report`."""

    def __init__(self, paths: Sequence[str], reader: JsonLineReader | None = None) -> None:
        check_inputs(paths)
        self.paths = tuple(paths)
        self.reader = reader if reader is not None else JsonLineReader()
        self._stopping = False

    @property
    def report(self) -> ReadReport:
        return self.reader.report

    def stop(self) -> None:
        self._stopping = True

    def events(self) -> Iterator[Flow | Lost]:
        for name in self.paths:
            if self._stopping:
                return
            with ExitStack() as stack:
                stream = _open(name, stack)
                try:
                    yield from self.reader.read(stream, "stdin" if name == STDIN else name)
                except (OSError, EOFError, gzip.BadGzipFile) as err:
                    raise InputError(f"reading {name}: {err}. The file may be cut short or not gzip") from err


def read_files(paths: Sequence[str], reader: JsonLineReader | None = None) -> Iterator[Flow]:
    """Just the flows of the files, in order (for readers that need nothing else)."""
    for event in FileSource(paths, reader).events():
        if isinstance(event, Flow):
            yield event
