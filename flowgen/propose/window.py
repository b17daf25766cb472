"""Events Hubble lost while the evidence was observed, for the pull request to say.

From flow files: the lost-event records in them (stdin cannot be read twice: not known).
From the store: the `lost_events` each run recorded in its metadata (runs last updated
before --since are left out). Only the files' schemas are read, not their graphs.
"""

from __future__ import annotations

import contextlib
from collections import Counter
from collections.abc import Sequence
from datetime import datetime
from pathlib import Path

import orjson
import pyarrow as pa
import pyarrow.parquet as pq

from flowgen.graph.store import Store
from flowgen.ingest.events import Lost
from flowgen.ingest.files import STDIN, FileSource
from flowgen.ingest.jsonlines import JsonLineReader


def lost_events(inputs: Sequence[str] | None, store: Path, since: datetime | None) -> dict[str, int] | None:
    """Lost events by source (Hubble's LostEventSource names); None when they cannot be known."""
    counts: Counter[str] = Counter()
    if inputs:
        if STDIN in inputs:
            return None
        source = FileSource(inputs, JsonLineReader(warn=lambda _message: None))
        events = source.events()
        try:
            for event in events:
                if isinstance(event, Lost):
                    counts[event.source] += event.count
        finally:
            close = getattr(events, "close", None)
            if close is not None:
                close()
        return dict(counts)
    for path in Store(store).files():
        try:
            raw = (pq.read_schema(path).metadata or {}).get(b"flowgen")
            meta = orjson.loads(raw) if raw else {}
        except (OSError, pa.ArrowException, orjson.JSONDecodeError):
            continue
        if not isinstance(meta, dict):
            continue
        updated = meta.get("updated")
        if since is not None and isinstance(updated, str):
            with contextlib.suppress(ValueError):
                if datetime.fromisoformat(updated) < since:
                    continue
        lost = meta.get("lost_events")
        for name, count in lost.items() if isinstance(lost, dict) else ():
            if isinstance(count, int):
                counts[str(name)] += count
    return dict(counts)
