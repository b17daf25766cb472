"""Input files and stdin: which inputs can be read, gzip detected by content, lines to the JSON reader."""

from __future__ import annotations

import glob
import gzip
import hashlib
import io
import itertools
import re
import sys
import typing
import zlib
from collections.abc import Iterable, Iterator, Mapping, Sequence
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path
from typing import IO

from flowgen.errors import InputError
from flowgen.ingest.events import Lost
from flowgen.ingest.flow import Flow
from flowgen.ingest.jsonlines import JsonLineReader, ReadReport

STDIN = "-"
# How much of a file's head identifies it (see Taken).
FINGERPRINT_BYTES = 64 * 1024

_GZIP_MAGIC = b"\x1f\x8b"
_GLOB = re.compile(r"[*?[]")
# Decompressed bytes read at a time: as fast as larger reads, and a file cut short loses at most this
# much of what precedes the cut (the next run reads it once the file is whole).
_GZIP_BUFFER = 64 * 1024


def expand_inputs(paths: Sequence[str]) -> tuple[str, ...]:
    """The inputs with each glob pattern ('archive/**/*.jsonl.gz', quoted so the shell leaves it)
    replaced by the files it matches, sorted; a pattern that matches no file is an error. A name
    that exists is taken as it is, even with glob characters in it."""
    found: list[str] = []
    for name in paths:
        if name == STDIN or not _GLOB.search(name) or Path(name).exists():
            found.append(name)
            continue
        matches = sorted(match for match in glob.glob(name, recursive=True) if Path(match).is_file())
        if not matches:
            raise InputError(f"no file matches {name}. Check the pattern (** matches folders at any depth)")
        found.extend(matches)
    return tuple(found)


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
            raise InputError(
                f"cannot read {name}: it is a directory. Pass the files in it, e.g. --input-file '{name}/**/*.jsonl*'"
            )


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
        unzipped = stack.enter_context(gzip.GzipFile(fileobj=stream, mode="rb"))
        # Lines from a larger buffer: iterating GzipFile itself reads 8 KiB at a time (2.1 s instead of
        # 3.2 s for 1M lines of 1.3 KB, bench/data's demo-mix capture).
        return typing.cast(IO[bytes], stack.enter_context(io.BufferedReader(unzipped, _GZIP_BUFFER)))
    return stream


@dataclass(frozen=True, slots=True)
class Taken:
    """How far a run read one input file: lines 1..`position` are in its graph. A later run
    into the same store skips them (`fingerprint` recognizes the file, also once it grew)."""

    input: str
    fingerprint: str
    position: int
    complete: bool


class FileSource:
    """Hubble JSON files as a flow source (flowgen.ingest.events.Source): the flows and
    lost-event notices of each file in turn. "-" is stdin; gzip is detected by content.
    Inputs are checked when the source is made, before anything is read; what the reader
    met besides flows (skipped records, malformed lines) is in `report`.

    `resume` maps a file's fingerprint to the lines an earlier run already took from it;
    those lines are skipped (`skipped` counts them), so reading a file again after an
    interruption does not count its flows twice. stdin cannot be recognized, so it is
    always read whole. A file that breaks off (a gzip file cut short) keeps what was read
    before, is listed in `broken`, and the next file is read."""

    def __init__(
        self, paths: Sequence[str], reader: JsonLineReader | None = None, *, resume: Mapping[str, int] | None = None
    ) -> None:
        paths = expand_inputs(paths)
        check_inputs(paths)
        self.paths = paths
        self.reader = reader if reader is not None else JsonLineReader()
        self.skipped = 0
        # Files that could not be read to their end (cut short, not gzip after all), with where and why.
        self.broken: list[str] = []
        self._resume = resume or {}
        self._taken: list[Taken] = []
        self._current: tuple[str, str, int] | None = None
        self._stopping = False

    @property
    def report(self) -> ReadReport:
        return self.reader.report

    def stop(self) -> None:
        self._stopping = True

    def taken(self) -> list[Taken]:
        """How far each file was read so far (stdin is not listed)."""
        found = list(self._taken)
        if self._current is not None:
            name, fingerprint, start = self._current
            found.append(Taken(name, fingerprint, max(start, self.reader.line), complete=False))
        return found

    def events(self) -> Iterator[Flow | Lost]:
        for name in self.paths:
            if self._stopping:
                return
            fingerprint = "" if name == STDIN else _fingerprint(name)
            start = self._resume.get(fingerprint, 0) if fingerprint else 0
            with ExitStack() as stack:
                stream = _open(name, stack)
                lines: Iterable[bytes] = stream
                if start:
                    lines = itertools.islice(stream, start, None)
                    # Count what is skipped, so the file's end can be told from a file that shrank.
                    self.skipped += start
                if fingerprint:
                    self._current = (name, fingerprint, start)
                complete = False
                try:
                    yield from self.reader.read(lines, "stdin" if name == STDIN else name, first=start + 1)
                    complete = True
                except (OSError, EOFError, zlib.error) as err:
                    # The lines before stay taken (and their flows in the graph); the next file is read.
                    where = f"after line {self.reader.line}" if self.reader.line > start else "at its start"
                    self.broken.append(f"{name} stopped {where}: {err}")
                finally:
                    self._current = None
                    if fingerprint:
                        # A malformed last line without a line end may still be being written: not taken.
                        position = max(start, self.reader.line - self.reader.cut_short)
                        self._taken.append(Taken(name, fingerprint, position, complete=complete))


def _fingerprint(name: str) -> str:
    """What recognizes a file across runs: a hash of its first bytes (its head does not change
    when an exporter appends to it, or when it is renamed)."""
    try:
        with Path(name).open("rb") as stream:
            head = stream.read(FINGERPRINT_BYTES)
    except OSError as err:
        raise InputError(f"cannot read {name}: {err.strerror}") from err
    return hashlib.sha256(head).hexdigest()[:32]


def read_files(paths: Sequence[str], reader: JsonLineReader | None = None) -> Iterator[Flow]:
    """Just the flows of the files, in order (for readers that need nothing else)."""
    for event in FileSource(paths, reader).events():
        if isinstance(event, Flow):
            yield event
