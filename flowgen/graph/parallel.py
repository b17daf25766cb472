"""Observe files in parallel: flows cut into groups by client, one GraphBuilder per share of groups, graphs added up.

A GraphBuilder remembers things between flows (flowgen.graph.builder): the DNS
answers each client got (to name the outside addresses it then connects to),
the connections it already counted (one connection seen at both ends counts
once) and the HTTP paths seen per edge (to fold exploding ones). Each of these
belongs to one client: the source of a request, or the destination of a DNS
answer. So each file's flows are cut into groups by their client's identity
(outside clients by address); groups whose clients shared an address (the two
ends of a connection naming its client differently) are linked, and linked
groups are built by one GraphBuilder, in file order, with the same code as the
single-process path. One builder's result then depends only on its own flows,
and the builders' graphs add up (Graph.merge, the merge the store runs between
runs) to the graph one builder makes of all the flows.

The steps are plain functions of their inputs, so any executor can run them
(flowgen.graph.dask_engine runs them on dask.distributed; `run_here` in this
process):

1. `split_file`: one file read with the single path's reader and filters
   (FileSource, Observation: --since, -n, counts, lost events), its kept flows
   cut into groups by client, numbered in file order and msgpack-encoded;
2. `Routes`: from every file's links and group sizes, which share builds each
   group (linked groups together, shares balanced by flows);
3. `build_share`: one share's groups from every file, in file order, decoded
   and built into a graph;
4. `combine`: two partial results added up; a tree of these gives the whole.

Where the result can differ from one builder's (docs/scaling.md): a builder
forgets connections older than 30 s before the newest flow once it remembers
100,000 of them (DNS answers past their TTL likewise). With many files, each
file starts before the previous one ended; one builder, having seen more,
forgets sooner, so a share's builder may recognize a connection's second
sighting that one builder counted as new.
"""

from __future__ import annotations

import heapq
import zlib
from array import array
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import TypeVar

import msgspec

from flowgen.cilium import Entity
from flowgen.graph.builder import BuildOptions, BuildReport, GraphBuilder
from flowgen.graph.evidence import Skip, answers_dns, classify
from flowgen.graph.frame import Graph
from flowgen.graph.identity import Peer, PeerKind, peer_of
from flowgen.graph.session import Counters, Observation
from flowgen.ingest.files import FileSource, Taken
from flowgen.ingest.flow import Endpoint, Flow
from flowgen.ingest.jsonlines import JsonLineReader, ReadReport
from flowgen.ingest.summary import FlowSummary

_T = TypeVar("_T")
_FIELDS = len(Flow.__struct_fields__)
_CACHE_LIMIT = 100_000
# Groups of clients inside the cluster (by peer) and outside it (by address) a file's flows are cut into.
INSIDE_GROUPS = 1024
OUTSIDE_GROUPS = 64


def _stable(text: str) -> int:
    """A hash that is the same in every process (Python's own str hash is salted per process)."""
    return zlib.crc32(text.encode())


def _text(peer: Peer) -> str:
    return "\x1f".join((str(peer.kind), peer.cluster, peer.namespace, peer.name, *peer.labels))


class Clients:
    """The client of each flow as the builder sees it, reduced to (group, address hash). The client is
    the source of a request, or the destination of a DNS answer; the group is its peer's (hashed into
    INSIDE_GROUPS), or for an outside client, which the builder names by address, its address's
    (hashed into OUTSIDE_GROUPS); the address is its IP (its pod name when the flow has no IP header)."""

    def __init__(self) -> None:
        self._seen: dict[tuple[object, ...], str] = {}

    def of(self, flow: Flow) -> tuple[str, int]:
        answer = answers_dns(flow)
        endpoint = flow.destination if answer else flow.source
        ip = flow.ip
        if ip is None:
            # The builder tells connections apart by pod name then.
            address = _stable("pod:" + endpoint.pod_name)
        else:
            address = _stable(ip.destination if answer else ip.source)
        group = self._group(endpoint)
        return (group or f"w{address % OUTSIDE_GROUPS}"), address

    def _group(self, endpoint: Endpoint) -> str:
        key = (endpoint.identity, endpoint.namespace, endpoint.cluster_name, endpoint.labels, endpoint.pod_name)
        found = self._seen.get(key)
        if found is None:
            if len(self._seen) >= _CACHE_LIMIT:
                self._seen.clear()
            peer = peer_of(endpoint)
            world = peer.kind is PeerKind.ENTITY and peer.name == Entity.WORLD
            found = self._seen[key] = "" if world else f"v{_stable(_text(peer)) % INSIDE_GROUPS}"
        return found


@dataclass
class Links:
    """What one file says about which groups must be built together (see Routes)."""

    # (group, address) of each evidence flow from a client inside the cluster.
    inside: set[tuple[str, int]] = field(default_factory=set)
    # The addresses of evidence flows from outside clients (sorted, unsigned 32-bit).
    outside: bytes = b""
    # Flows per group.
    sizes: Counter[str] = field(default_factory=Counter)


class Routes:
    """Which share builds each group. Everything a builder remembers between flows is keyed by the
    client's peer (DNS answers, folded paths: one group) or by its address (a connection seen at both
    ends, maybe once as a pod and once as the world, or as `host` and `remote-node`): groups whose
    clients shared an address are linked (union-find) and built together. Linked groups are then
    given to shares largest first, each to the share with the fewest flows so far."""

    def __init__(self, links: Sequence[Links], shares: int) -> None:
        if shares < 1:
            raise ValueError("at least one share")
        self.shares = shares
        parent: dict[str, str] = {}

        def root(node: str) -> str:
            parent.setdefault(node, node)
            while parent[node] != node:
                parent[node] = parent[parent[node]]
                node = parent[node]
            return node

        def link(first: str, second: str) -> None:
            first, second = root(first), root(second)
            if first != second:
                # The smaller name is the root: the same links give the same roots, whatever the order.
                parent[max(first, second)] = min(first, second)

        inside_addresses: set[int] = set()
        for each in links:
            for group, address in each.inside:
                link(group, f"a{address}")
                inside_addresses.add(address)
        for each in links:
            for address in array("I", each.outside):
                if address in inside_addresses:
                    link(f"w{address % OUTSIDE_GROUPS}", f"a{address}")
        sizes: Counter[str] = Counter()
        for each in links:
            for group, count in each.sizes.items():
                sizes[root(group)] += count
        load = [0] * shares
        by_root: dict[str, int] = {}
        for group, count in sorted(sizes.items(), key=lambda item: (-item[1], item[0])):
            share = min(range(shares), key=lambda index: (load[index], index))
            by_root[group] = share
            load[share] += count
        self._share = {group: by_root[root(group)] for each in links for group in each.sizes}

    def share(self, group: str) -> int:
        """The share of a group (groups no file had go to share 0: they have no flows)."""
        return self._share.get(group, 0)

    def plan(self) -> list[list[str]]:
        """The groups of each share, sorted."""
        found: list[list[str]] = [[] for _ in range(self.shares)]
        for group, share in sorted(self._share.items()):
            found[share].append(group)
        return found


# ---------------------------------------------------------------------------
# Flows between processes


def encode(flows: Sequence[tuple[int, Flow]]) -> bytes:
    """Numbered flows as compressed msgpack (only the fields Flow declares: the JSON reader's extra
    ones stay behind). zlib at its fastest level makes them about 15 times smaller for a tenth more
    time: the cluster holds every file's flows until the shares are built."""
    plain = [
        (number, flow if type(flow) is Flow else Flow(*msgspec.structs.astuple(flow)[:_FIELDS]))
        for number, flow in flows
    ]
    return zlib.compress(msgspec.msgpack.encode(plain), 1)


_DECODER = msgspec.msgpack.Decoder(list[tuple[int, Flow]])


def decode(data: bytes) -> list[tuple[int, Flow]]:
    return _DECODER.decode(zlib.decompress(data))


# ---------------------------------------------------------------------------
# The steps


@dataclass(frozen=True, slots=True)
class Filters:
    """What observe keeps: flows from `since` on, touching `namespaces` (all when empty)."""

    namespaces: frozenset[str] = frozenset()
    since: datetime | None = None


@dataclass
class FileRead:
    """What reading one file gave, besides its flows (see split_file)."""

    input: str
    counters: Counters
    summary: FlowSummary
    read: ReadReport
    taken: list[Taken]
    # Lines skipped because an earlier run into the same store took them.
    already_observed: int
    links: Links = field(default_factory=Links)
    # Where and why the file broke off before its end (see FileSource.broken).
    broken: list[str] = field(default_factory=list)


def split_file(
    path: str, filters: Filters, *, resume: Mapping[str, int] | None = None, strict: bool = False
) -> tuple[FileRead, dict[str, bytes]]:
    """Read one file as observe does and cut its kept flows into groups by client, each numbered in
    file order and msgpack-encoded, with the links between groups (see Routes)."""
    source = FileSource([path], JsonLineReader(strict=strict), resume=resume)
    clients, links = Clients(), Links()
    groups: dict[str, list[tuple[int, Flow]]] = {}
    outside: set[int] = set()
    number = 0

    def put(flow: Flow) -> None:
        nonlocal number
        group, address = clients.of(flow)
        found = groups.get(group)
        if found is None:
            found = groups[group] = []
        found.append((number, flow))
        number += 1
        if not isinstance(classify(flow), Skip):
            if group[0] == "w":
                outside.add(address)
            else:
                links.inside.add((group, address))

    session = Observation(GraphBuilder(), namespaces=filters.namespaces, since=filters.since)
    session.read(source, sink=put)
    links.outside = array("I", sorted(outside)).tobytes()
    links.sizes.update({group: len(flows) for group, flows in groups.items()})
    read = FileRead(
        path, session.counters, session.summary, source.report, source.taken(), source.skipped, links, source.broken
    )
    return read, {group: encode(flows) for group, flows in groups.items()}


def pick(split: tuple[FileRead, dict[str, bytes]], groups: Sequence[str]) -> list[bytes]:
    """The encoded groups of one file that one share builds."""
    found = split[1]
    return [found[group] for group in groups if group in found]


@dataclass
class Partial:
    """A graph built from some shares, with what its builders counted."""

    graph: Graph
    report: BuildReport = field(default_factory=BuildReport)


def build_share(files: Sequence[Sequence[bytes]], options: BuildOptions) -> Partial:
    """One share's flows, file by file, in each file's order, built into a graph."""
    builder = GraphBuilder(options)
    add = builder.add
    for encoded in files:
        lists = [decode(data) for data in encoded]
        numbered = lists[0] if len(lists) == 1 else heapq.merge(*lists, key=_number)
        for _, flow in numbered:
            add(flow)
    return Partial(builder.graph(), builder.report)


def _number(item: tuple[int, Flow]) -> int:
    return item[0]


def combine(first: Partial, second: Partial) -> Partial:
    """Two partial results added up."""
    return Partial(Graph.merge([first.graph, second.graph]), add_reports(first.report, second.report))


def add_reports(first: BuildReport, second: BuildReport) -> BuildReport:
    return BuildReport(
        flows=first.flows + second.flows,
        evidence=first.evidence + second.evidence,
        skipped=first.skipped + second.skipped,
        repeated=first.repeated + second.repeated,
        named_by_dns=first.named_by_dns + second.named_by_dns,
        folded=first.folded + second.folded,
        over_long=first.over_long + second.over_long,
    )


# ---------------------------------------------------------------------------
# What the files said, added up


def add_reads(reads: Sequence[FileRead]) -> tuple[Counters, FlowSummary, ReadReport]:
    """The counters, flow summary and read report of all files, as one reader of them all would have."""
    counters, summary, report = Counters(), FlowSummary(), ReadReport()
    for each in reads:
        counters.flows += each.counters.flows
        counters.before_since += each.counters.before_since
        counters.lost += each.counters.lost
        _add_summary(summary, each.summary)
        report.lines += each.read.lines
        report.flows += each.read.flows
        report.skipped += each.read.skipped
        for problem in each.read.problems:
            report.add_problem(problem)
        # add_problem counted the kept examples; the file's count includes the ones not kept.
        report.malformed += each.read.malformed - len(each.read.problems)
        report.unknown_fields.extend(name for name in each.read.unknown_fields if name not in report.unknown_fields)
    return counters, summary, report


def _add_summary(total: FlowSummary, part: FlowSummary) -> None:
    total.kept += part.kept
    total.filtered_out += part.filtered_out
    firsts = [when for when in (total.first, part.first) if when is not None]
    lasts = [when for when in (total.last, part.last) if when is not None]
    total.first = min(firsts) if firsts else None
    total.last = max(lasts) if lasts else None
    total.namespaces += part.namespaces
    total.verdicts += part.verdicts
    total.drop_reasons += part.drop_reasons
    total.nodes |= part.nodes


# ---------------------------------------------------------------------------
# The steps in this process (tests, and the reference for other executors)


def run_here(
    paths: Sequence[str],
    shares: int,
    filters: Filters,
    options: BuildOptions,
    *,
    resume: Mapping[str, int] | None = None,
    strict: bool = False,
) -> tuple[list[FileRead], Partial]:
    """All steps one after another in this process: what an executor does spread out."""
    splits = [split_file(path, filters, resume=resume, strict=strict) for path in paths]
    reads = [read for read, _ in splits]
    routes = Routes([read.links for read in reads], shares)
    plan = routes.plan()
    partials = [build_share([pick(split, plan[share]) for split in splits], options) for share in range(shares)]
    return reads, tree(partials)


def tree(partials: list[Partial]) -> Partial:
    """Partials added up pairwise, level by level."""
    return pairwise(partials, combine) if partials else Partial(Graph())


def pairwise(items: Sequence[_T], reduce: Callable[[_T, _T], _T]) -> _T:
    """`items` reduced two at a time, level by level (a tree: an executor runs each level in
    parallel); `items` must not be empty."""
    level = list(items)
    while len(level) > 1:
        paired = [reduce(level[i], level[i + 1]) for i in range(0, len(level) - 1, 2)]
        level = paired + ([level[-1]] if len(level) % 2 else [])
    return level[0]
