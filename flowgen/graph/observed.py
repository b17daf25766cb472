"""The evidence a command works from, loaded in one call: from flow files or from the store.

`load()` is what `graph`, `generate`, `verify` and `diff` call. Flow files go
through the same observe session as `flowgen observe` (in memory, nothing is
written); the store gives the graph of every run so far. From files, the graph
can also keep the concrete requests behind each allowed edge (`samples`), which
replay needs to judge selectors on labels the graph leaves out.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

from flowgen.errors import InputError
from flowgen.graph.builder import GraphBuilder
from flowgen.graph.edge import Edge, Sample
from flowgen.graph.frame import Graph
from flowgen.graph.session import Observation
from flowgen.graph.store import Store
from flowgen.ingest.files import FileSource
from flowgen.ingest.jsonlines import JsonLineReader


@dataclass(frozen=True)
class Observed:
    """The observed graph and, when it was built from flows, the samples behind its allowed edges."""

    graph: Graph
    # By Edge.key; None when the graph came from the store (which keeps no samples).
    samples: Mapping[tuple[object, ...], tuple[Sample, ...]] | None = None
    _edges: list[Edge] = field(default_factory=list, init=False, repr=False, compare=False)

    def edges(self) -> list[Edge]:
        """The graph's edges (computed once)."""
        if not self._edges:
            self._edges.extend(self.graph.edges())
        return self._edges


def load(
    inputs: Sequence[str] | None,
    store: Path,
    since: datetime | None,
    *,
    warn: Callable[[str], None],
    samples: bool = False,
) -> Observed:
    """The graph built from `inputs` when given (with samples when asked), else read from `store`.
    Only evidence from `since` on counts. `warn` receives what the reader or the store skipped."""
    if inputs:
        source = FileSource(inputs, JsonLineReader(warn=warn))
        builder = GraphBuilder(samples=samples)
        Observation(builder, since=since).read(source)
        return Observed(builder.graph(), builder.samples() if samples else None)
    loaded = Store(store).load(since)
    for path, reason in loaded.problems:
        warn(f"skipping unreadable store file {path}: {reason}")
    if not loaded.runs:
        raise InputError(
            f"the store at {store} holds no observations yet; run `flowgen observe` first "
            "(or pass --store DIR / --input-file FILE)"
        )
    return Observed(loaded.graph)
