"""HTTP paths as anchored RE2 regexes (ref cilium-policy.md §7.2), generalized to the
class of the values seen, never to any segment (docs/generate.md, "Path classes").

A path becomes a template: its literal segments, escaped (characters Hubble shows
percent-encoded also match raw), and its id segments as the class of id seen there
(flowgen.graph.folding.id_class): a number `[0-9]+`, a UUID (five hex groups joined by
dashes), a hex hash `[0-9a-fA-F]*[0-9][0-9a-fA-F]*`, a token `[<its alphabet>]*[0-9][...]*`.
Every class needs a digit or dashes, so a word never seen there (`export`, `admin`) never
matches. Templates of one method that differ only in their ids merge into one regex whose
id segments admit the union of the classes seen there; literal siblings stay literal.

Past a threshold of regexes per peer, port and method (a true explosion of literal paths),
templates collapse, each step the smallest that helps, and only while still past it:
templates differing in one segment, then in the segments after the first, with `[^/]+`
where literals differed (classes stay classes); last, templates sharing a first segment
into `/<segment>(/.*)?`. The first segment always stays as seen. Collapsing is the one
place that admits paths never seen; each collapsed regex is reported with what it admits.

Why no exact lengths (`{8}`, `{40}`): Envoy refuses a regex whose compiled RE2 program is
larger than 100 (the default of `re2.max_program_size.error_level`, which Cilium does not
raise; the endpoint's whole policy is then refused, cilium/cilium#41314), and a counted
repetition is unrolled in the program: the exact UUID shape alone costs 72, the shape used
here 23 (`[^/]+` costs 13).
"""

from __future__ import annotations

import enum
import functools
import re
import string
from collections import defaultdict
from collections.abc import Callable, Hashable, Iterator, Mapping
from dataclasses import dataclass
from typing import TypeAlias
from urllib.parse import unquote

from flowgen.graph.folding import REST_PLACEHOLDER, IdClass, id_class, placeholder_classes

# The optional query string: Envoy matches the path with its query (ref §7.2).
QUERY = r"(\?.*)?"
# Characters Hubble shows percent-encoded in a path while Envoy matches them raw (ref hubble-api.md §7);
# flowgen.graph.folding keeps segments with such escapes out of the token class.
_ENCODED_BY_HUBBLE = frozenset("|^{}\\ ")
_PERCENT_RUN = re.compile(r"(?:%[0-9A-Fa-f]{2})+")
_HEX = "[0-9a-fA-F]"
_CLASS_REGEX: dict[IdClass, str] = {
    IdClass.NUMBER: "[0-9]+",
    IdClass.UUID: f"{_HEX}+(?:-{_HEX}+){{4}}",
    IdClass.HEX: f"{_HEX}*[0-9]{_HEX}*",
}
# A token's alphabet as the ranges seen in it, in the order written; digits always (a token has one).
# `_` and `-` go together: base64url uses both, and a short sample may show only one of them.
_TOKEN_RANGES: tuple[tuple[str, frozenset[str]], ...] = (
    ("A-Z", frozenset(string.ascii_uppercase)),
    ("a-z", frozenset(string.ascii_lowercase)),
    ("0-9", frozenset(string.digits)),
    (r"_\-", frozenset("_-")),
    ("=", frozenset("=")),
    (".", frozenset(".")),
    ("~", frozenset("~")),
    ("%", frozenset("%")),
)
# A folded `{token}` kept no values: the whole token alphabet.
_ANY_TOKEN = frozenset(ranges for ranges, _ in _TOKEN_RANGES)
_CASES = frozenset({"A-Z", "a-z"})


@dataclass(frozen=True, slots=True)
class Ids:
    """A segment that held ids: the classes seen there and, for tokens, their alphabet's ranges."""

    classes: frozenset[IdClass]
    alphabet: frozenset[str] = frozenset()

    @staticmethod
    def of(segment: str) -> Ids | None:
        kind = id_class(segment)
        if kind is None:
            return None
        if kind is not IdClass.TOKEN:
            return Ids(frozenset({kind}))
        return Ids(frozenset({kind}), frozenset(r for r, chars in _TOKEN_RANGES if not chars.isdisjoint(segment)))

    @staticmethod
    def folded(classes: frozenset[IdClass]) -> Ids:
        return Ids(classes, _ANY_TOKEN if IdClass.TOKEN in classes else frozenset())

    def __or__(self, other: Ids) -> Ids:
        return Ids(self.classes | other.classes, self.alphabet | other.alphabet)

    def regex(self) -> str:
        """The classes as one RE2 expression; a class another one admits whole is left out."""
        kinds = set(self.classes)
        if kinds & {IdClass.HEX, IdClass.TOKEN}:
            kinds.discard(IdClass.NUMBER)
        if IdClass.TOKEN in kinds and self.alphabet >= _CASES:
            kinds.discard(IdClass.HEX)
        alternatives = [self._class_regex(kind) for kind in IdClass if kind in kinds]
        return alternatives[0] if len(alternatives) == 1 else "(?:" + "|".join(alternatives) + ")"

    def _class_regex(self, kind: IdClass) -> str:
        if kind is not IdClass.TOKEN:
            return _CLASS_REGEX[kind]
        chars = "".join(r for r, _ in _TOKEN_RANGES if r in self.alphabet or r == "0-9")
        return f"[{chars}]*[0-9][{chars}]*"


class Wild(enum.Enum):
    """What stands where no class applies: only from folding (`REST`) and collapsing."""

    SEGMENT = "[^/]+"
    SEGMENT_OR_EMPTY = "[^/]*"
    # The rest of the path: a folded `/<segment>/*`.
    REST = ".*"
    # The segment before it and anything below: a collapsed `/<segment>(/.*)?`.
    BELOW = "(/.*)?"


Part: TypeAlias = str | Ids | Wild
# A path split at `/`: literal segments, ids, wildcards.
Template: TypeAlias = tuple[Part, ...]


@dataclass(frozen=True, slots=True)
class Collapsed:
    """A regex that replaced `count` path patterns past the threshold, and what it admits in words."""

    regex: str
    count: int
    admits: str


def _literal(segment: str) -> str:
    """A path segment as an RE2 literal; characters Hubble shows percent-encoded
    also match in their raw form, because Envoy matches the raw path."""
    out, last = [], 0
    for match in _PERCENT_RUN.finditer(segment):
        out.append(re.escape(segment[last : match.start()]))
        encoded = match.group(0)
        decoded = unquote(encoded)
        if decoded != encoded and (any(c in _ENCODED_BY_HUBBLE for c in decoded) or not decoded.isascii()):
            out.append(f"(?:{re.escape(encoded)}|{re.escape(decoded)})")
        else:
            out.append(re.escape(encoded))
        last = match.end()
    out.append(re.escape(segment[last:]))
    return "".join(out)


@functools.lru_cache(maxsize=1 << 14)
def path_template(path: str, *, folded: bool = False, literal: bool = False) -> Template:
    """A path as a template: id segments as their class, placeholders of a folded path as the
    classes they stand for (a trailing `*` as the rest of the path); `literal` keeps every
    segment literal (gRPC names a service and a method, never an id)."""
    segments = path.split("/")
    if literal:
        return tuple(segments)
    parts: list[Part] = []
    for index, segment in enumerate(segments):
        held = placeholder_classes(segment) if folded else frozenset()
        if held:
            parts.append(Ids.folded(held))
        elif folded and segment == REST_PLACEHOLDER and index == len(segments) - 1:
            parts.append(Wild.REST)
        else:
            parts.append(Ids.of(segment) or segment)
    return tuple(parts)


def _part_regex(part: Part) -> str:
    if isinstance(part, Ids):
        return part.regex()
    if isinstance(part, Wild):
        return part.value
    return _literal(part)


@functools.lru_cache(maxsize=1 << 14)
def template_regex(template: Template) -> str:
    """The template as an RE2 regex (without the query suffix)."""
    if template and template[-1] is Wild.BELOW:
        return "/".join(_part_regex(part) for part in template[:-1]) + Wild.BELOW.value
    return "/".join(_part_regex(part) for part in template)


def path_regex(path: str, *, folded: bool, query: bool) -> str:
    """An anchored path regex for one observed (or folded) path: id segments as their class,
    literal parts escaped, `(\\?.*)?` when a query string was seen (Envoy matches the path
    with its query, ref §7.2)."""
    return template_regex(path_template(path, folded=folded)) + (QUERY if query else "")


def merge_ids(paths: Mapping[Template, bool]) -> dict[Template, bool]:
    """Templates (-> query seen) that differ only in the ids they held, merged: each id
    segment admits the union of the classes seen there."""
    merged: dict[tuple[Part | None, ...], tuple[Template, bool]] = {}
    for template, query in paths.items():
        key = tuple(None if isinstance(part, Ids) else part for part in template)
        seen, seen_query = merged.get(key, (template, query))
        merged[key] = (tuple(_union((a, b)) for a, b in zip(seen, template, strict=True)), query or seen_query)
    return dict(merged.values())


def path_rules(paths: Mapping[Template, bool], threshold: int) -> tuple[list[str], list[Collapsed]]:
    """One method's path regexes (query suffix included) for its templates (-> query seen):
    ids merged by class, collapsed past `threshold`; and the collapsed ones."""
    regexes, collapsed = _path_rules(tuple(paths.items()), threshold)
    return list(regexes), list(collapsed)


@functools.lru_cache(maxsize=1 << 12)
def _path_rules(
    paths: tuple[tuple[Template, bool], ...], threshold: int
) -> tuple[tuple[str, ...], tuple[Collapsed, ...]]:
    """`path_rules` of the templates in this order, remembered: the clients of one API usually
    call the same few paths, so many peers' rules are the same (this was most of the HTTP work
    on large graphs; docs/performance.md)."""
    kept, collapsed = collapse_paths(merge_ids(dict(paths)), threshold)
    return tuple(sorted({template_regex(t) + (QUERY if query else "") for t, query in kept.items()})), tuple(collapsed)


# ---------------------------------------------------------------------------
# Collapsing past the threshold

# A grouping yields, for a template, the groups it could collapse in: (key, preference).
_Grouping: TypeAlias = Callable[[Template], Iterator[tuple[Hashable, int]]]


def _one_segment(template: Template) -> Iterator[tuple[Hashable, int]]:
    """Templates equal but for one segment after the first (the deepest such segment first)."""
    for index in range(2, len(template)):
        yield (index, template[:index], template[index + 1 :]), index


def _same_depth(template: Template) -> Iterator[tuple[Hashable, int]]:
    """Templates of one depth sharing a first segment."""
    if len(template) > 2 and not isinstance(template[1], Wild):
        yield (len(template), template[1]), 0


def _below_first(template: Template) -> Iterator[tuple[Hashable, int]]:
    """Templates sharing a first segment, at any depth."""
    if len(template) > 1 and not isinstance(template[1], Wild):
        yield template[1], 0


def _union(parts: tuple[Part, ...]) -> Part:
    """What admits every part of one segment: the part itself, the union of id classes, or a wildcard."""
    first = parts[0]
    if all(part == first for part in parts):
        return first
    if Wild.REST in parts:
        return Wild.REST
    ids = [part for part in parts if isinstance(part, Ids)]
    if len(ids) == len(parts):
        return functools.reduce(Ids.__or__, ids)
    if "" in parts or Wild.SEGMENT_OR_EMPTY in parts:
        return Wild.SEGMENT_OR_EMPTY
    return Wild.SEGMENT


def _largest(grouping: _Grouping, templates: Mapping[Template, bool]) -> list[Template] | None:
    """The largest group of at least two templates (ties: the preferred, then by regex)."""
    groups: dict[Hashable, list[Template]] = defaultdict(list)
    preference: dict[Hashable, int] = {}
    for template in templates:
        for key, prefer in grouping(template):
            groups[key].append(template)
            preference[key] = prefer
    ranked = [
        ((-len(members), -preference[key], sorted(template_regex(m) for m in members)), members)
        for key, members in groups.items()
        if len(members) > 1
    ]
    return min(ranked, key=lambda item: item[0])[1] if ranked else None


def _admits(template: Template) -> str:
    if template[-1] is Wild.BELOW:
        return f"it admits any path below /{_part_regex(template[1])}"
    if Wild.SEGMENT in template or Wild.SEGMENT_OR_EMPTY in template:
        return "it admits any value in the segments where different literals were seen ([^/]+)"
    return "its id segments admit the classes seen there"


def collapse_paths(paths: Mapping[Template, bool], threshold: int) -> tuple[dict[Template, bool], list[Collapsed]]:
    """Templates (-> query seen) past `threshold`: collapse the largest group, each step the
    narrowest that helps, until at most `threshold` are left (or nothing more collapses):
    templates equal but for one segment, then of one depth under one first segment (`[^/]+`
    where literals differed, id classes kept), then under one first segment `/<segment>(/.*)?`.
    The first segment is never generalized: paths under different ones stay apart."""
    result = dict(paths)
    weight = dict.fromkeys(result, 1)
    made: set[Template] = set()
    for grouping in (_one_segment, _same_depth, _below_first):
        while len(result) > threshold and (members := _largest(grouping, result)) is not None:
            if grouping is _below_first:
                merged: Template = (members[0][0], members[0][1], Wild.BELOW)
            else:
                merged = tuple(_union(column) for column in zip(*members, strict=True))
            queries = [result.pop(member) for member in members]
            count = sum(weight.pop(member) for member in members)
            result[merged] = result.get(merged, False) or any(queries)
            weight[merged] = weight.get(merged, 0) + count
            made.add(merged)
    collapsed = [
        Collapsed(template_regex(t) + (QUERY if result[t] else ""), weight[t], _admits(t))
        for t in sorted(made & result.keys(), key=template_regex)
    ]
    return result, collapsed
