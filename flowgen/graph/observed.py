"""The evidence a command works from, loaded in one call: from flow files or from the store.

`load()` is what `graph`, `generate`, `verify` and `diff` call. Flow files go
through the same observe session as `flowgen observe` (in memory, nothing is
written); the store gives the graph of every run so far. From files, the graph
can also keep the concrete requests behind each allowed edge (`samples`), which
replay needs to judge selectors on labels the graph leaves out.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

from flowgen.errors import InputError, StoreError
from flowgen.graph.builder import GraphBuilder
from flowgen.graph.edge import Edge, Sample
from flowgen.graph.frame import Graph
from flowgen.graph.session import Observation
from flowgen.graph.store import RUNS, Store
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
    namespaces: Iterable[str] = (),
    allow_partial: bool = False,
) -> Observed:
    """The graph built from `inputs` when given (with samples when asked), else read from `store`.
    Only evidence from `since` on counts. `warn` receives what the reader or the store skipped.

    Raises when there is nothing to work from: no evidence at all, none since `since`, none
    touching `namespaces`; the message says what there is. A store file that cannot be read is
    an error too (a graph from part of the evidence would drop rules silently), unless
    `allow_partial`."""
    wanted = sorted(set(namespaces))
    if inputs:
        source = FileSource(inputs, JsonLineReader(warn=warn))
        builder = GraphBuilder(samples=samples)
        session = Observation(builder, since=since)
        session.read(source)
        found = Observed(builder.graph(), builder.samples() if samples else None)
        where = f"the flows in {', '.join(inputs)}"
        if since is not None and not len(found.graph) and session.counters.before_since:
            raise InputError(
                f"nothing since {since:%Y-%m-%d %H:%M} UTC: all {session.counters.before_since} flows in "
                f"{', '.join(inputs)} are older. Pass an earlier --since"
            )
        _check_scope(found.graph, found.graph, where, since, wanted)
        return found
    loaded = Store(store).load()
    if loaded.problems:
        damaged = "; ".join(f"{path} ({reason})" for path, reason in loaded.problems)
        if not allow_partial:
            raise StoreError(
                f"the store at {store} has files that cannot be read: {damaged}. Move them out of "
                f"{store / RUNS} (they may be cut short), or pass --allow-partial to work from the rest"
            )
        warn(f"working from part of the store (--allow-partial); skipped: {damaged}")
    if not loaded.runs:
        raise InputError(
            f"the store at {store} holds no observations yet; run `flowgen observe` first "
            "(or pass --store DIR / --input-file FILE)"
        )
    found = Observed(loaded.graph.since(since))
    _check_scope(found.graph, loaded.graph, f"the store at {store}", since, wanted)
    return found


def _check_scope(found: Graph, whole: Graph, where: str, since: datetime | None, namespaces: list[str]) -> None:
    """Nothing to work from is an error that says what there is."""
    window = whole.window()
    if window is None:
        raise InputError(f"no evidence in {where} (no request at a policy decision point); nothing to work from")
    held = f"evidence in {where} runs from {window[0]:%Y-%m-%d %H:%M} to {window[1]:%Y-%m-%d %H:%M} UTC"
    if since is not None and not len(found):
        raise InputError(f"nothing since {since:%Y-%m-%d %H:%M} UTC: {held}. Pass an earlier --since")
    if namespaces and not len(found.touching(namespaces)):
        raise InputError(
            f"nothing for namespace {', '.join(namespaces)}: {held}, for namespaces "
            f"{', '.join(found.namespaces()) or 'none'}. Check -n"
        )
