"""`observe --engine dask`: the steps of flowgen.graph.parallel on dask.distributed.

Each input file is read and cut into groups of clients on a worker
(`split_file`); this process gathers what the files said (counts, and which
groups are linked), plans the shares (`Routes`), and each share is built on a
worker from every file's groups for it (`pick`, `build_share`); the partial
graphs are added up in a tree of `combine` tasks. This process gathers only the
result, and writes the run to the store as the single-process path does (one
checkpoint, at the end). Without a scheduler
address a LocalCluster of worker processes on this machine (127.0.0.1) runs
it. Workers on other machines must have flowgen installed and see the input
files under the same paths (docs/scaling.md).

Dask is optional (`pip install 'flowgen[dask]'`) and imported only here.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from flowgen.errors import InputError, UsageError
from flowgen.graph.builder import BuildOptions, BuildReport
from flowgen.graph.parallel import (
    FileRead,
    Filters,
    Partial,
    Routes,
    add_reads,
    build_share,
    combine,
    pairwise,
    pick,
    split_file,
)
from flowgen.graph.session import ObserveSummary, files_meta, nothing_read, run_meta, tally
from flowgen.graph.store import Store
from flowgen.ingest.files import check_inputs, expand_inputs

if TYPE_CHECKING:
    from distributed import Client, Future

# Shares per worker thread: more shares than threads evens out the work when clients differ in size.
SHARES_PER_THREAD = 2
# How often the wait looks at stop() (seconds).
_POLL = 0.5


def _read(split: tuple[FileRead, dict[str, bytes]]) -> FileRead:
    return split[0]


class DaskRun:
    """One observe run from files on Dask; `stop()` (from a signal handler) abandons it: nothing is written."""

    def __init__(
        self,
        paths: Sequence[str],
        *,
        store: Store | None,
        run: str,
        filters: Filters,
        options: BuildOptions,
        strict: bool = False,
        scheduler: str | None = None,
        workers: int | None = None,
        now: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        if "-" in paths:
            raise UsageError("--engine dask reads files, not stdin (-): its workers cannot see this process's input")
        # Checked here, before a cluster starts: the workers would find a missing file only later.
        self.paths = expand_inputs(paths)
        check_inputs(self.paths)
        self.store = store
        self.run = run
        self.filters = filters
        self.options = options
        self.strict = strict
        self.scheduler = scheduler
        self.workers = workers
        self.stop_reason = ""
        self._now = now

    def stop(self, reason: str) -> None:
        self.stop_reason = self.stop_reason or reason

    def observe(self) -> ObserveSummary:
        started = self._now()
        resume = self.store.taken() if self.store is not None else {}
        with _client(self.scheduler, self.workers) as client:
            threads = sum(client.nthreads().values()) or 1
            result = self._compute(client, SHARES_PER_THREAD * threads, resume)
        if result is None:
            return self._summary([], stopped_by=self.stop_reason)
        reads, partial = result
        return self._finish(reads, partial, started)

    def _compute(self, client: Client, shares: int, resume: Mapping[str, int]) -> tuple[list[FileRead], Partial] | None:
        splits = [
            client.submit(split_file, path, self.filters, resume=resume, strict=self.strict, pure=False)
            for path in self.paths
        ]
        reads = [client.submit(_read, split) for split in splits]
        if not self._wait(client, reads):
            client.cancel(splits)
            return None
        found: list[FileRead] = client.gather(reads)
        plan = Routes([read.links for read in found], shares).plan()
        level = [
            client.submit(build_share, [client.submit(pick, split, groups) for split in splits], self.options)
            for groups in plan
        ]
        # The files' groups stay on the workers only as long as a share still needs them.
        del splits
        final = pairwise(level, lambda first, second: client.submit(combine, first, second))
        if not self._wait(client, [final]):
            client.cancel([final])
            return None
        return found, final.result()

    def _wait(self, client: Client, futures: list[Future[Any]]) -> bool:
        """Wait for the futures; False when stop() was called first. A task's error is raised here."""
        from distributed import wait  # noqa: PLC0415

        while not self.stop_reason:
            for future in futures:
                if future.status in ("error", "cancelled"):
                    future.result()
            pending = [future for future in futures if future.status != "finished"]
            if not pending:
                return True
            try:
                wait(pending, timeout=_POLL, return_when="FIRST_COMPLETED")
            except TimeoutError:
                continue
        return False

    def _finish(self, reads: list[FileRead], partial: Partial, started: datetime) -> ObserveSummary:
        counters, _, report = add_reads(reads)
        already = sum(read.already_observed for read in reads)
        broken = [each for read in reads for each in read.broken]
        if nothing_read(counters.flows, self.paths, report, already, broken):
            return self._summary(reads)
        checkpoint = None
        if self.store is not None:
            meta = run_meta(
                started,
                self._now(),
                partial.report,
                counters=counters,
                describe=", ".join(self.paths),
                namespaces=self.filters.namespaces,
            )
            meta.update(files_meta(report, [taken for read in reads for taken in read.taken]))
            checkpoint = str(self.store.write_run(self.run, partial.graph, meta))
        return self._summary(reads, partial, checkpoint=checkpoint)

    def _summary(
        self,
        reads: list[FileRead],
        partial: Partial | None = None,
        *,
        checkpoint: str | None = None,
        stopped_by: str | None = None,
    ) -> ObserveSummary:
        """The run's summary (without `partial`: nothing was built or written)."""
        counters, summary, report = add_reads(reads)
        return tally(
            counters,
            summary,
            partial.report if partial is not None else BuildReport(),
            edges=partial.graph.edge_count() if partial is not None else 0,
            read=report,
            inputs=self.paths,
            already_observed=sum(read.already_observed for read in reads),
            store=str(self.store.root) if self.store is not None else None,
            checkpoint=checkpoint,
            stopped_by=stopped_by,
            broken=tuple(each for read in reads for each in read.broken),
        )


@contextmanager
def _client(scheduler: str | None, workers: int | None) -> Iterator[Client]:
    """A client of the scheduler at `scheduler`, or of a LocalCluster of `workers` processes
    (one thread each; default: one per core) on 127.0.0.1, closed afterwards."""
    try:
        from distributed import Client, LocalCluster  # noqa: PLC0415
    except ImportError:
        raise UsageError("--engine dask needs Dask: pip install 'flowgen[dask]' (dask and dask.distributed)") from None
    if scheduler is not None:
        try:
            client = Client(scheduler, timeout="10s")
        except OSError as problem:
            raise InputError(f"cannot reach the Dask scheduler at {scheduler}: {problem}") from None
        with client:
            yield client
        return
    count = workers or os.cpu_count() or 1
    # Quiet: the cluster's own log lines would bury observe's summary.
    with (
        LocalCluster(
            n_workers=count,
            threads_per_worker=1,
            processes=True,
            host="127.0.0.1",
            dashboard_address=None,
            silence_logs=logging.ERROR,
        ) as cluster,
        Client(cluster) as client,
    ):
        client.wait_for_workers(count, timeout=60)
        yield client
