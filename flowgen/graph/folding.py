"""Folding exploding HTTP paths: ids in URLs would make one edge per id.

The graph keeps up to a bound of distinct raw paths per edge; past it, new paths fold
into templates (each id-like segment becomes the placeholder of its class: `{int}`,
`{uuid}`, `{hex}`, `{token}`), then into the first segment and `*`, then into `/*`,
each level bounded the same way (docs/observe.md). Hubble shows `{` and `}` in paths
percent-encoded, and folded paths are marked on their edge, so a folded path cannot be
mistaken for an observed one. synth turns the same classes into regexes (synth/paths.py).

Stores written before the classes existed hold `{id}`, which stood for a segment of any
of the four classes (the classes below are exactly what that older version called an id).
"""

from __future__ import annotations

import enum
import re
from dataclasses import dataclass, field


class IdClass(enum.StrEnum):
    """The kinds of id a path segment can hold; the value names its placeholder."""

    # Decimal digits only.
    NUMBER = "int"
    # 8-4-4-4-12 hex digits.
    UUID = "uuid"
    # 8 or more hex digits with at least one digit (and a letter: else it is a number).
    HEX = "hex"
    # 20 or more of `A-Za-z0-9_-=.~%` with at least one digit (base64url, JWT-like, ...).
    TOKEN = "token"


# First match wins. A hex hash and a token need a digit: a word (`deadbeef`, `internal`) is not an id.
_CLASSES: tuple[tuple[IdClass, re.Pattern[str]], ...] = (
    (IdClass.NUMBER, re.compile(r"[0-9]+")),
    (IdClass.UUID, re.compile(r"[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}")),
    (IdClass.HEX, re.compile(r"(?=[^0-9]*[0-9])[0-9a-fA-F]{8,}")),
    (IdClass.TOKEN, re.compile(r"(?=[^0-9]*[0-9])[A-Za-z0-9_\-=.~%]{20,}")),
)
# A percent escape of a character Hubble shows encoded while Envoy matches it raw (`|^{}\`, space,
# non-ASCII; see synth/paths.py): a token class would not admit the raw form, so such a segment
# stays a literal.
_RAW_IN_ENVOY = re.compile(r"%(?:7[BbCcDd]|5[CcEe]|20|[89A-Fa-f][0-9A-Fa-f])")
# Placeholders in folded paths. Hubble shows `{`, `}` in paths percent-encoded,
# and folded paths are marked (Edge.folded), so they cannot be mistaken for raw ones.
PLACEHOLDERS: dict[IdClass, str] = {kind: "{" + kind.value + "}" for kind in IdClass}
# What flowgen wrote before the classes existed: a segment of any class.
LEGACY_ID_PLACEHOLDER = "{id}"
REST_PLACEHOLDER = "*"
_PLACEHOLDER_CLASSES: dict[str, frozenset[IdClass]] = {
    **{placeholder: frozenset({kind}) for kind, placeholder in PLACEHOLDERS.items()},
    LEGACY_ID_PLACEHOLDER: frozenset(IdClass),
}
# A value of each class, to replay a folded path (flowgen verify).
SAMPLES: dict[IdClass, str] = {
    IdClass.NUMBER: "1",
    IdClass.UUID: "3f2504e0-4f89-11d3-9a0c-0305e82c3301",
    IdClass.HEX: "9f86d081884c7d65",
    IdClass.TOKEN: "Zm9vYmFyYmF6cXV4MTIz",
}


def id_class(segment: str) -> IdClass | None:
    """The class of id a path segment is (None: a literal)."""
    for kind, pattern in _CLASSES:
        if pattern.fullmatch(segment):
            if kind is IdClass.TOKEN and _RAW_IN_ENVOY.search(segment):
                return None
            return kind
    return None


def is_id_segment(segment: str) -> bool:
    """Whether a path segment looks like an id (number, UUID, hex hash, long token with a digit)."""
    return id_class(segment) is not None


def placeholder_classes(segment: str) -> frozenset[IdClass]:
    """The classes a segment of a folded path stands for (empty: not a placeholder); the
    legacy `{id}` stands for all of them."""
    return _PLACEHOLDER_CLASSES.get(segment, frozenset())


def placeholder_sample(segment: str) -> str | None:
    """A value the placeholder stands for (None: not a placeholder)."""
    classes = placeholder_classes(segment)
    return next((SAMPLES[kind] for kind in IdClass if kind in classes), None)


def path_template(path: str) -> str:
    """The path with each id-like segment replaced by the placeholder of its class."""
    return "/".join(PLACEHOLDERS[kind] if (kind := id_class(s)) else s for s in path.split("/"))


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
