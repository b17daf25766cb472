"""The observation store: graphs from every `observe` run, persisted as Parquet.

Layout (documented in docs/store.md):

    <store>/observations/<run>.parquet   one file per observe run
    <store>/pods/<run>.parquet           the pods that run saw (flowgen.graph.pods)

Each run writes only its own file, and rewrites it whole at every checkpoint:
the new content goes to a temporary file in the same directory, is fsynced,
and is renamed over the old one (then the directory is fsynced). A reader
therefore sees either the previous checkpoint or the new one, never a torn
file; a process killed mid-write leaves only a temporary file, which readers
ignore and later writers clean up; two `observe` processes never write the
same file, so they cannot interfere.

Reading concatenates every run's graph and merges it (flowgen.graph.frame.merge),
so observations add up across runs, nodes and clusters. Rows are per hour,
which is the granularity of `--since`. A run's pods file is written before its
graph file and read after it, so a reader never sees a graph newer than its
pods; stores from before pods files were written read as having seen none.

The files are plain Parquet with the graph's columns (see flowgen.graph.frame),
readable by pandas, DuckDB or Spark; run metadata (what was read, lost
events, when) is JSON under the `flowgen` key of the file's schema metadata.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import socket
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import orjson
import pyarrow as pa
import pyarrow.parquet as pq

from flowgen.errors import StoreError
from flowgen.graph import pods
from flowgen.graph.frame import COLUMNS, Graph

# The graph is many string columns made and dropped at every checkpoint and read. pyarrow's default
# pool (mimalloc) keeps what they freed, so a long observe run grew with each checkpoint; the system
# allocator gives it back (docs/performance.md). A pool the user names in the environment wins.
if "ARROW_DEFAULT_MEMORY_POOL" not in os.environ:
    pa.set_memory_pool(pa.system_memory_pool())

SCHEMA_VERSION = 1
RUNS = "observations"
PODS = "pods"
_META_KEY = b"flowgen"
_TMP_SUFFIX = ".tmp"
# Value columns newer than the first store files, and what older files mean for them.
_ADDED_LATER: dict[str, object] = {"src_nslabels": "", "dst_nslabels": "", "delivered": 1}
# Temporary files older than this are left-overs of a killed writer.
_STALE_SECONDS = 3600.0


def new_run_id(now: datetime) -> str:
    """A run name that sorts by start time and cannot collide between processes or hosts."""
    host = "".join(c if c.isalnum() or c in "-_" else "-" for c in socket.gethostname())[:32]
    return f"{now.astimezone(UTC):%Y%m%dT%H%M%SZ}-{host}-{os.getpid()}-{secrets.token_hex(3)}"


@dataclass(frozen=True, slots=True)
class RunInfo:
    """What a run recorded about itself (`meta` is free-form JSON from the CLI)."""

    run: str
    path: Path
    rows: int
    meta: dict[str, object] = field(default_factory=dict)


@dataclass
class Loaded:
    graph: Graph
    runs: list[RunInfo]
    # Files that could not be read: (path, reason). They are skipped, not deleted.
    problems: list[tuple[Path, str]]


class Store:
    """A store directory. Nothing is created until the first write."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.runs_dir = root / RUNS
        self.pods_dir = root / PODS

    def write_run(self, run: str, graph: Graph, meta: dict[str, object]) -> Path:
        """Atomically replace `run`'s files with `graph` (a checkpoint): its pods first, then its rows."""
        try:
            self.runs_dir.mkdir(parents=True, exist_ok=True)
            self.pods_dir.mkdir(parents=True, exist_ok=True)
        except OSError as problem:
            raise StoreError(
                f"cannot create the store at {self.root}: {problem.strerror}. "
                "Pass a writable directory with --store DIR (or FLOWGEN_STORE)"
            ) from None
        self._clean_stale()
        document = {"schema": SCHEMA_VERSION, "run": run, **meta}
        sightings = pa.Table.from_pandas(graph.pods[list(pods.COLUMNS)], preserve_index=False)
        _write(self.pods_dir, run, sightings)
        table = pa.Table.from_pandas(graph.frame[list(COLUMNS)], preserve_index=False)
        table = table.replace_schema_metadata({**(table.schema.metadata or {}), _META_KEY: orjson.dumps(document)})
        return _write(self.runs_dir, run, table)

    def files(self) -> list[Path]:
        if not self.runs_dir.is_dir():
            return []
        return sorted(p for p in self.runs_dir.iterdir() if p.suffix == ".parquet" and not p.name.startswith("."))

    def load(self, since: datetime | None = None) -> Loaded:
        """Every run's graph merged into one (rows from `since`'s hour on)."""
        graphs, runs, problems = [], [], []
        for path in self.files():
            try:
                table = pq.read_table(path)
            except (OSError, pa.ArrowException) as problem:
                problems.append((path, str(problem)))
                continue
            meta = _meta(table)
            if int(str(meta.get("schema", 0))) > SCHEMA_VERSION:
                raise StoreError(f"{path} was written by a newer flowgen (store schema {meta['schema']}); upgrade")
            missing = set(COLUMNS) - set(table.column_names)
            if missing - set(_ADDED_LATER):
                problems.append((path, f"not a flowgen graph (missing {', '.join(sorted(missing))})"))
                continue
            frame = table.to_pandas()
            for column in missing:
                frame[column] = _ADDED_LATER[column]
            graphs.append(Graph(frame).since(since))
            runs.append(RunInfo(str(meta.get("run", path.stem)), path, table.num_rows, meta))
        sightings = []
        for run in runs:
            # After the run's graph (see the module doc); absent for runs of older versions.
            path = self.pods_dir / f"{run.path.stem}.parquet"
            try:
                sightings.append(pods.since(pods.typed(pq.read_table(path).to_pandas()), since))
            except FileNotFoundError:
                continue
            except (OSError, pa.ArrowException, KeyError) as problem:
                problems.append((path, str(problem)))
        graph = Graph.merge(graphs)
        return Loaded(Graph(graph.frame, pods.merge(sightings)), runs, problems)

    def taken(self) -> dict[str, int]:
        """For each input file earlier runs read (by fingerprint, see flowgen.ingest.files.Taken),
        the most lines any of them took. Unreadable files are left to load() to report."""
        found: dict[str, int] = {}
        for path in self.files():
            try:
                meta = _meta(pq.read_schema(path))
            except (OSError, pa.ArrowException):
                continue
            inputs = meta.get("inputs")
            for taken in inputs if isinstance(inputs, list) else []:
                if isinstance(taken, dict):
                    fingerprint, position = taken.get("fingerprint"), taken.get("position")
                    if isinstance(fingerprint, str) and fingerprint and isinstance(position, int):
                        found[fingerprint] = max(found.get(fingerprint, 0), position)
        return found

    def _clean_stale(self) -> None:
        cutoff = time.time() - _STALE_SECONDS
        for path in self._temporaries():
            with contextlib.suppress(OSError):
                if path.stat().st_mtime < cutoff:
                    path.unlink()

    def _temporaries(self) -> Iterator[Path]:
        for directory in (self.runs_dir, self.pods_dir):
            yield from (p for p in directory.iterdir() if p.name.startswith(".") and p.name.endswith(_TMP_SUFFIX))


def _write(directory: Path, run: str, table: pa.Table) -> Path:
    """Replace `run`'s file in `directory` with `table`: a temporary file, fsynced, renamed."""
    final = directory / f"{run}.parquet"
    temporary = directory / f".{run}.{os.getpid()}{_TMP_SUFFIX}"
    try:
        with temporary.open("wb") as stream:
            pq.write_table(table, stream, compression="zstd")
            stream.flush()
            os.fsync(stream.fileno())
        temporary.replace(final)
        _fsync_directory(directory)
    except OSError as problem:
        with contextlib.suppress(OSError):
            temporary.unlink()
        raise StoreError(
            f"cannot write {final}: {problem.strerror}. The previous checkpoint is intact; "
            "free disk space or pass another --store DIR"
        ) from None
    return final


def _meta(table: pa.Table | pa.Schema) -> dict[str, object]:
    schema = table if isinstance(table, pa.Schema) else table.schema
    raw = (schema.metadata or {}).get(_META_KEY)
    if not raw:
        return {}
    try:
        document = orjson.loads(raw)
    except orjson.JSONDecodeError:
        return {}
    return document if isinstance(document, dict) else {}


def _fsync_directory(path: Path) -> None:
    """Make a rename durable (POSIX; a no-op where directories cannot be opened)."""
    try:
        descriptor = os.open(path, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(descriptor)
    finally:
        os.close(descriptor)
