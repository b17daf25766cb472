"""YAML nodes read as typed values, with the line and the fix when a node has the wrong shape.

`NodeReader` is the part of `parsing` that knows YAML rather than Cilium: it
reads PyYAML's composed nodes (which keep their line numbers) as mappings,
lists, strings, booleans and integers, and raises `InputError` naming the
file, the line, the path in the document and the fix.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import NoReturn

import yaml
from yaml.nodes import MappingNode, Node, ScalarNode, SequenceNode

from flowgen.errors import InputError

_NULL = "tag:yaml.org,2002:null"
_STR = "tag:yaml.org,2002:str"
INT = "tag:yaml.org,2002:int"
_BOOL = "tag:yaml.org,2002:bool"


def is_null(node: Node) -> bool:
    return isinstance(node, ScalarNode) and node.tag == _NULL


def _shape(node: Node) -> str:
    if isinstance(node, MappingNode):
        return "a mapping"
    if isinstance(node, SequenceNode):
        return "a list"
    kind = {_STR: "string", INT: "integer", _BOOL: "boolean", _NULL: "null"}.get(node.tag, "scalar")
    return f"the {kind} {node.value!r}"


class NodeReader:
    """Reads the nodes of one document from `origin`; `fail` names the file, the line and the path being read."""

    def __init__(self, origin: str, loader: yaml.SafeLoader) -> None:
        self.origin = origin
        self.loader = loader

    def fail(self, node: Node, problem: str, fix: str) -> NoReturn:
        raise InputError(f"reading {self.origin} line {node.start_mark.line + 1}: {problem}. Fix: {fix}")

    # Shapes ------------------------------------------------------------------

    def mapping(self, node: Node, path: str) -> Iterator[tuple[str, Node]]:
        """The key/value nodes of a mapping; null reads as an empty mapping (as in Go)."""
        if is_null(node):
            return
        if not isinstance(node, MappingNode):
            self.fail(node, f"{path} must be a mapping (key: value), not {_shape(node)}", "correct the indentation")
        self.loader.flatten_mapping(node)
        seen: set[str] = set()
        for key_node, value_node in node.value:
            if not isinstance(key_node, ScalarNode):
                self.fail(key_node, f"{path} has a key that is {_shape(key_node)}", "use plain string keys")
            key = str(key_node.value)
            if key in seen:
                self.fail(key_node, f"{path} has the key {key!r} twice", "remove one of them")
            seen.add(key)
            yield key, value_node

    def sequence(self, node: Node, path: str) -> list[Node]:
        if not isinstance(node, SequenceNode):
            self.fail(
                node, f"{path} must be a list, not {_shape(node)}", 'write one item per line, each starting with "- "'
            )
        return list(node.value)

    def string(self, node: Node, path: str) -> str:
        if not isinstance(node, ScalarNode) or node.tag != _STR:
            self.fail(node, f"{path} must be a string, not {_shape(node)}", f'quote the value: "{_text(node)}"')
        return str(node.value)

    def strings(self, node: Node, path: str) -> tuple[str, ...]:
        return tuple(self.string(item, f"{path}[{i}]") for i, item in enumerate(self.sequence(node, path)))

    def labels(self, node: Node, path: str) -> tuple[tuple[str, str], ...]:
        """A string map (matchLabels, metadata.labels); a null value reads as ""."""
        return tuple(
            (key, "" if is_null(value) else self.string(value, f"{path}.{key}"))
            for key, value in self.mapping(node, path)
        )

    def boolean(self, node: Node, path: str) -> bool:
        if not isinstance(node, ScalarNode) or node.tag != _BOOL:
            self.fail(node, f"{path} must be true or false, not {_shape(node)}", "write true or false, unquoted")
        return bool(self.loader.construct_object(node))

    def integer(self, node: Node, path: str) -> int:
        if not isinstance(node, ScalarNode) or node.tag != INT:
            self.fail(node, f"{path} must be an integer, not {_shape(node)}", "write a number, unquoted")
        return int(self.loader.construct_object(node))

    def items(self, node: Node, path: str) -> Iterator[tuple[str, Node]]:
        """A list's items with their paths; null items read as empty mappings (as Go does)."""
        for i, item in enumerate(self.sequence(node, path)):
            yield f"{path}[{i}]", item


def _text(node: Node) -> str:
    return str(node.value) if isinstance(node, ScalarNode) else "..."
