"""Policies to YAML: Cilium's camelCase field names on the way out (parsing.py reads them back).

`to_document` builds the Kubernetes object (plain dicts and lists, keys in a
fixed order); `dump` writes a multi-document stream with the policy header and
the evidence behind each peer rule as YAML comments.

Output is byte-for-byte deterministic and safe against hostile content: label
values, paths and names come from workloads, so every scalar is written as
PyYAML's emitter writes it (quoted whenever a YAML 1.1 or 1.2 reader, Go's
included, could read it as anything but that string) and comment text is split
into lines, each prefixed with `# `, with anything outside printable ASCII
escaped. The documents themselves are laid out by `block_yaml`, which writes
what PyYAML writes for flowgen's shapes many times faster (see below).
"""

from __future__ import annotations

import functools
import re
from collections.abc import Callable, Sequence
from typing import Any

import yaml
from yaml.events import MappingStartEvent
from yaml.nodes import Node

from flowgen.policy.model import (
    GROUP_VERSION,
    PEER_KEYS,
    SECTION_KEYS,
    CIDRRule,
    Direction,
    FQDNSelector,
    Kind,
    L7Rules,
    PeerRule,
    Policy,
    PortRule,
    Rule,
    Selector,
)

# --- Model -> document ------------------------------------------------------


class _Commented(dict[str, object]):
    """A peer rule's mapping that carries the comment `dump` writes above it."""

    def __init__(self, items: dict[str, object], comment: str) -> None:
        super().__init__(items)
        self.comment = comment


_Mark = Callable[[PeerRule, dict[str, object]], dict[str, object]]


def _plain(_peer: PeerRule, item: dict[str, object]) -> dict[str, object]:
    return item


def _with_comment(peer: PeerRule, item: dict[str, object]) -> dict[str, object]:
    return _Commented(item, peer.comment) if peer.comment else item


def to_document(policy: Policy) -> dict[str, object]:
    """The Kubernetes object for `policy`: Cilium's field names, keys in a fixed order,
    `None` fields left out, empty tuples as `[]`, ports as strings."""
    return _document(policy, _plain)


def _document(policy: Policy, mark: _Mark) -> dict[str, object]:
    metadata: dict[str, object] = {"name": policy.name}
    if policy.kind is Kind.CNP and policy.namespace:
        metadata["namespace"] = policy.namespace
    if policy.labels:
        metadata["labels"] = dict(policy.labels)
    if policy.annotations:
        metadata["annotations"] = dict(policy.annotations)
    document: dict[str, object] = {"apiVersion": GROUP_VERSION, "kind": policy.kind.value, "metadata": metadata}
    if policy.single and len(policy.specs) == 1:
        document["spec"] = _rule(policy.specs[0], mark)
    elif policy.specs or not policy.single:
        # `single` with several rules cannot be written as `spec`; it reads back as single=False.
        document["specs"] = [_rule(rule, mark) for rule in policy.specs]
    return document


def _rule(rule: Rule, mark: _Mark) -> dict[str, object]:
    out: dict[str, object] = {}
    if rule.description:
        out["description"] = rule.description
    if rule.endpoint_selector is not None:
        out["endpointSelector"] = _selector(rule.endpoint_selector)
    if rule.node_selector is not None:
        out["nodeSelector"] = _selector(rule.node_selector)
    if rule.enable_default_deny is not None:
        deny: dict[str, object] = {}
        if rule.enable_default_deny.ingress is not None:
            deny["ingress"] = rule.enable_default_deny.ingress
        if rule.enable_default_deny.egress is not None:
            deny["egress"] = rule.enable_default_deny.egress
        out["enableDefaultDeny"] = deny
    for key, direction, deny_section in SECTION_KEYS:
        section = rule.section(direction, deny=deny_section)
        if section is not None:
            out[key] = [mark(peer, _peer(peer, direction)) for peer in section]
    return out


def _peer(peer: PeerRule, direction: Direction) -> dict[str, object]:
    endpoints, entities, cidrs, cidr_sets = PEER_KEYS[direction]
    out: dict[str, object] = {}
    if peer.endpoints is not None:
        out[endpoints] = [_selector(s) for s in peer.endpoints]
    if peer.entities is not None:
        out[entities] = list(peer.entities)
    if peer.cidrs is not None:
        out[cidrs] = list(peer.cidrs)
    if peer.cidr_sets is not None:
        out[cidr_sets] = [_cidr_rule(c) for c in peer.cidr_sets]
    if peer.fqdns is not None:
        # There is no fromFQDNs: the key is the same in both directions (validate reports ingress use).
        out["toFQDNs"] = [_fqdn(f) for f in peer.fqdns]
    if peer.to_ports is not None:
        out["toPorts"] = [_port_rule(p) for p in peer.to_ports]
    if peer.icmps is not None:
        out["icmps"] = [{"fields": [{"type": f.type, "family": f.family} for f in fields]} for fields in peer.icmps]
    return out


def _selector(selector: Selector) -> dict[str, object]:
    out: dict[str, object] = {}
    if selector.match_labels:
        out["matchLabels"] = dict(selector.match_labels)
    if selector.match_expressions:
        expressions: list[dict[str, object]] = []
        for requirement in selector.match_expressions:
            expression: dict[str, object] = {"key": requirement.key, "operator": requirement.operator.value}
            if requirement.values:
                expression["values"] = list(requirement.values)
            expressions.append(expression)
        out["matchExpressions"] = expressions
    return out


def _cidr_rule(rule: CIDRRule) -> dict[str, object]:
    out: dict[str, object] = {"cidr": rule.cidr}
    if rule.excepts:
        out["except"] = list(rule.excepts)
    return out


def _fqdn(selector: FQDNSelector) -> dict[str, object]:
    return _strings(("matchName", selector.match_name), ("matchPattern", selector.match_pattern))


def _strings(*pairs: tuple[str, str]) -> dict[str, object]:
    """The pairs whose value is not "" (an empty string field means the key is absent)."""
    return {key: value for key, value in pairs if value}


def _port_rule(rule: PortRule) -> dict[str, object]:
    ports: list[dict[str, object]] = []
    for port in rule.ports:
        item: dict[str, object] = {"port": port.port, "protocol": port.protocol.value}
        if port.end_port is not None:
            item["endPort"] = port.end_port
        ports.append(item)
    out: dict[str, object] = {"ports": ports}
    if rule.rules is not None:
        out["rules"] = _l7(rule.rules)
    return out


def _l7(rules: L7Rules) -> dict[str, object]:
    out: dict[str, object] = {}
    if rules.http is not None:
        http: list[dict[str, object]] = []
        for h in rules.http:
            item = _strings(("method", h.method), ("path", h.path), ("host", h.host))
            if h.headers:
                item["headers"] = list(h.headers)
            http.append(item)
        out["http"] = http
    if rules.dns is not None:
        out["dns"] = [_fqdn(d) for d in rules.dns]
    if rules.kafka is not None:
        out["kafka"] = [
            _strings(
                ("role", k.role),
                ("apiKey", k.api_key),
                ("apiVersion", k.api_version),
                ("clientID", k.client_id),
                ("topic", k.topic),
            )
            for k in rules.kafka
        ]
    return out


# --- Document -> YAML text --------------------------------------------------

# Plain scalars that some YAML reader takes for a bool or null: YAML 1.1 (PyYAML, go-yaml v2,
# which kubectl uses) knows y/n/yes/no/on/off, YAML 1.2 true/false/null. Compared lower-cased.
_AMBIGUOUS = frozenset({"", "~", "null", "true", "false", "y", "n", "yes", "no", "on", "off"})
# go-yaml v2 hands anything starting like a number to Go's ParseInt / ParseFloat, which also
# accept forms PyYAML's resolver does not (0o17, 1e5, 0x1p3): such strings are always quoted.
_NUMERIC_START = frozenset("0123456789+-.")


class _CommentedMappingStart(MappingStartEvent):
    def __init__(self, event: MappingStartEvent, comment: str) -> None:
        super().__init__(event.anchor, event.tag, event.implicit, event.start_mark, event.end_mark, event.flow_style)
        self.comment = comment


class _Dumper(yaml.SafeDumper):
    """SafeDumper plus: comments above commented peer rules, double quotes instead of single,
    strings quoted whenever another YAML reader could misread them, and no anchors."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._comments: dict[int, str] = {}
        self._pending: str | None = None

    def ignore_aliases(self, data: Any) -> bool:
        return True

    def represent_commented(self, data: _Commented) -> Node:
        node = self.represent_dict(data)
        self._comments[id(node)] = data.comment
        return node

    def represent_text(self, data: str) -> Node:
        quote = data.lower() in _AMBIGUOUS or data[:1] in _NUMERIC_START
        return self.represent_scalar("tag:yaml.org,2002:str", data, style='"' if quote else None)

    def serialize_node(self, node: Any, parent: Any, index: Any) -> None:
        self._pending = self._comments.get(id(node))
        super().serialize_node(node, parent, index)

    def emit(self, event: Any) -> None:
        if self._pending is not None and isinstance(event, MappingStartEvent):
            event = _CommentedMappingStart(event, self._pending)
            self._pending = None
        super().emit(event)

    def choose_scalar_style(self) -> str:
        style = super().choose_scalar_style()
        return '"' if style == "'" else style

    def expect_block_sequence_item(self, first: bool = False) -> None:
        if isinstance(self.event, _CommentedMappingStart):
            for line in comment_lines(self.event.comment):
                self.write_indent()
                self.stream.write(line)
                self.column += len(line)
                self.whitespace = self.indention = False
        super().expect_block_sequence_item(first)


_Dumper.add_representer(_Commented, _Dumper.represent_commented)
_Dumper.add_representer(str, _Dumper.represent_text)


def comment_lines(text: str) -> list[str]:
    """`text` as YAML comment lines: one `# ` line per line of text (every line break YAML
    knows splits), characters outside printable ASCII escaped so nothing ends the comment."""
    lines = []
    for line in text.splitlines() or [""]:
        safe = (
            line
            if line.isascii() and line.isprintable()
            else "".join(c if " " <= c <= "~" else c.encode("unicode_escape").decode("ascii") for c in line)
        )
        lines.append(f"# {safe}".rstrip())
    return lines


def dump(policies: Sequence[Policy]) -> str:
    """A YAML stream, one document per policy ("---" between them), each starting with its
    header as comments and each commented peer rule preceded by its comment. Deterministic."""
    documents = []
    for policy in policies:
        header = "".join(f"{line}\n" for entry in policy.header for line in comment_lines(entry))
        document = _document(policy, _with_comment)
        try:
            body = block_yaml(document)
        except _UnsupportedError:
            body = pyyaml_dump(document)
        documents.append(header + body)
    return "---\n".join(documents)


def pyyaml_dump(document: object) -> str:
    """One document through PyYAML's emitter with `_Dumper`: the reference `block_yaml` matches."""
    return yaml.dump(
        document, Dumper=_Dumper, default_flow_style=False, sort_keys=False, allow_unicode=False, width=float("inf")
    )


# --- A fast emitter for the shapes flowgen writes --------------------------------------------
#
# PyYAML's emitter is an event machine in pure Python; it was most of `generate`'s time on large
# graphs (docs/performance.md). Policy documents use a small part of YAML: block mappings with
# string keys, block sequences of scalars and mappings, scalars, `{}` and `[]`, and comments
# above peer rules. `block_yaml` writes exactly what `pyyaml_dump` writes for those, line by
# line; each distinct scalar's text is PyYAML's own (asked once and remembered, except for the
# plainest strings, whose text is themselves). Anything else (a key PyYAML writes in the complex
# `? ` form, a sequence directly inside a sequence) raises `_UnsupportedError`, and `dump` uses PyYAML.


class _UnsupportedError(Exception):
    """A document shape `block_yaml` does not write; PyYAML does."""


# Strings PyYAML writes plain and reads back as strings: a letter, `/` or `_` first (no YAML
# indicator, number, timestamp or `.inf`), then letters, digits and `._/-:`, not ending in `:`
# (a `:` before a space or the end is an indicator), and not a bool or null word (`_AMBIGUOUS`).
_PLAIN = re.compile(r"[A-Za-z_/](?:[A-Za-z0-9._/:-]*[A-Za-z0-9._/-])?")
# PyYAML writes a key in the complex `? key` form when it and its tag pass 127 characters:
# keys this long or longer are left to it (`_pyyaml_scalar` sees which form it chose).
_SIMPLE_KEY = 100


@functools.lru_cache(maxsize=1 << 16)
def _pyyaml_scalar(value: str, key: bool) -> str:
    """The text PyYAML gives `value` as a mapping key or as a value (in a mapping or a sequence,
    in block style its text is the same)."""
    if key:
        text = pyyaml_dump({value: 0})
        if not text.endswith(": 0\n") or text.startswith("? "):
            raise _UnsupportedError(value)
        text = text[: -len(": 0\n")]
    else:
        text = pyyaml_dump([value])
        if not text.startswith("- ") or not text.endswith("\n"):
            raise _UnsupportedError(value)
        text = text[2:-1]
    if "\n" in text:
        raise _UnsupportedError(value)
    return text


def _scalar(value: object, key: bool = False) -> str:
    if isinstance(value, str):
        if _PLAIN.fullmatch(value) and value.lower() not in _AMBIGUOUS and not (key and len(value) >= _SIMPLE_KEY):
            return value
        return _pyyaml_scalar(value, key)
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    raise _UnsupportedError(type(value).__name__)


def block_yaml(document: dict[str, object]) -> str:
    """`document` as `pyyaml_dump` writes it (see above)."""
    lines: list[str] = []
    if not document:
        return "{}\n"
    _mapping(lines, document, "", "")
    return "\n".join(lines) + "\n"


def _mapping(lines: list[str], mapping: dict[str, object], first: str, indent: str) -> None:
    """A non-empty block mapping whose keys stand at `indent`; the first line starts with `first`
    (a sequence item's `- `), the others with `indent`."""
    lead = first
    for key, value in mapping.items():
        head = f"{lead}{_scalar(key, key=True)}:"
        lead = indent
        if isinstance(value, dict):
            if value:
                lines.append(head)
                _mapping(lines, value, indent + "  ", indent + "  ")
            else:
                lines.append(head + " {}")
        elif isinstance(value, list):
            if value:
                lines.append(head)
                # A sequence in a mapping stands at the mapping's indent (PyYAML's indentless sequences).
                _sequence(lines, value, indent)
            else:
                lines.append(head + " []")
        else:
            lines.append(f"{head} {_scalar(value)}")


def _sequence(lines: list[str], sequence: list[object], indent: str) -> None:
    for item in sequence:
        if isinstance(item, _Commented):
            lines.extend(indent + line for line in comment_lines(item.comment))
        if isinstance(item, dict):
            if item:
                _mapping(lines, item, indent + "- ", indent + "  ")
            else:
                lines.append(indent + "- {}")
        elif isinstance(item, list):
            raise _UnsupportedError("a sequence in a sequence")
        else:
            lines.append(f"{indent}- {_scalar(item)}")
