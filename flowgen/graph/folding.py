"""Folding exploding HTTP paths: ids in URLs would make one edge per id.

The graph keeps up to a bound of distinct raw paths per edge; past it, new paths fold
into templates (id-like segments become `{id}`), then into the first segment and `*`,
then into `/*`, each level bounded the same way (docs/observe.md). Hubble shows `{` and
`}` in paths percent-encoded, and folded paths are marked on their edge, so a folded
path cannot be mistaken for an observed one. synth turns the same placeholders into
regexes.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

# A path segment that is an id: a number, a UUID, a hex hash, or a long token with a digit.
_ID_SEGMENT = re.compile(
    r"^(?:\d+"
    r"|[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}"
    r"|(?=[^/]*\d)[0-9a-fA-F]{8,}"
    r"|(?=[^/]*\d)[A-Za-z0-9_\-=.~%]{20,})$"
)
# Placeholders in folded paths. Hubble shows `{`, `}` in paths percent-encoded,
# and folded paths are marked (Edge.folded), so they cannot be mistaken for raw ones.
ID_PLACEHOLDER = "{id}"
REST_PLACEHOLDER = "*"


def is_id_segment(segment: str) -> bool:
    """Whether a path segment looks like an id (number, UUID, hex hash, long token with a digit)."""
    return _ID_SEGMENT.match(segment) is not None


def path_template(path: str) -> str:
    """The path with id-like segments replaced by `{id}`."""
    return "/".join(ID_PLACEHOLDER if is_id_segment(segment) else segment for segment in path.split("/"))


def path_prefix(path: str) -> str:
    """The path's first segment followed by `/*` (anything below it)."""
    first = path.lstrip("/").split("/", 1)[0]
    return f"/{first}/{REST_PLACEHOLDER}" if first else f"/{REST_PLACEHOLDER}"


@dataclass(slots=True)
class SeenPaths:
    raw: set[str] = field(default_factory=set)
    templates: set[str] = field(default_factory=set)
    prefixes: set[str] = field(default_factory=set)


def fold(seen: SeenPaths, path: str, bound: int) -> tuple[str, bool]:
    """Keep up to `bound` distinct raw paths per edge; past that, fold new ones to
    templates, then to prefixes, then to `/*`, each level bounded the same way."""
    if path in seen.raw:
        return path, False
    if len(seen.raw) < bound:
        seen.raw.add(path)
        return path, False
    for level, make in ((seen.templates, path_template), (seen.prefixes, path_prefix)):
        folded = make(path)
        if folded in level or len(level) < bound:
            level.add(folded)
            return folded, True
    return f"/{REST_PLACEHOLDER}", True
