"""YAML to policies: `parse` reads CNP / CCNP documents (GitOps files, `kubectl get -o yaml`
lists) back into the model that render.py writes.

Reading is tolerant of what flowgen does not model (kept by name in the
`unsupported` fields) and strict about shapes the API server would refuse
(`InputError` with the file, the line and the fix). One exception, made so
that `validation.validate` can report it: ports written as YAML integers
(`port: 80`, which the CRD rejects) are read as strings and recorded in
`PortRule.unsupported` as `ports[i].port=int` (see `policy.INT_PORT`).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import yaml
from yaml.nodes import Node, ScalarNode

from flowgen.errors import InputError
from flowgen.policy.model import (
    GROUP_VERSION,
    INT_PORT,
    PEER_KEYS,
    SECTION_KEYS,
    CIDRRule,
    Direction,
    EnableDefaultDeny,
    FQDNSelector,
    HTTPRule,
    ICMPField,
    KafkaRule,
    Kind,
    L4Protocol,
    L7Rules,
    Operator,
    PeerRule,
    Policy,
    PortProtocol,
    PortRule,
    Requirement,
    Rule,
    Selector,
)
from flowgen.policy.yaml_nodes import INT, NodeReader, is_null

_LIST_KINDS = {"List", "CiliumNetworkPolicyList", "CiliumClusterwideNetworkPolicyList"}


@dataclass(slots=True)
class Parsed:
    """What `parse` found: the policies in document order, a message per document that is not
    a Cilium policy, and warnings about top-level / metadata fields that were ignored."""

    policies: list[Policy] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)


def parse(text: str, origin: str) -> Parsed:
    """Every CiliumNetworkPolicy / CiliumClusterwideNetworkPolicy in a YAML stream (`origin` names
    it in messages). Other kinds are skipped with a message; `List` kinds are opened; broken YAML
    and wrong shapes raise `InputError` with the line and the fix."""
    parsed = Parsed()
    try:
        # The reader rejects non-printable characters as soon as it is created.
        loader = yaml.SafeLoader(text)
    except yaml.reader.ReaderError as error:
        raise InputError(
            f"reading {origin} line {text.count(chr(10), 0, error.position) + 1}: character U+{error.character:04X} "
            "is not allowed in YAML. Fix: remove it, or write it as an escape inside a double-quoted string"
        ) from None
    try:
        number = 0
        while loader.check_node():
            number += 1
            node = loader.get_node()
            if node is None or is_null(node):
                continue
            _Reader(origin, loader, parsed).document(node, f"document {number}")
    except yaml.MarkedYAMLError as error:
        mark = error.problem_mark or error.context_mark
        where = f" line {mark.line + 1}" if mark is not None else ""
        raise InputError(
            f"reading {origin}{where}: invalid YAML: {error.problem or error.context}. Fix the YAML syntax there"
        ) from None
    finally:
        loader.dispose()
    return parsed


class _Reader(NodeReader):
    """Reads one document's nodes into `parsed`: its policies, skip messages and warnings."""

    def __init__(self, origin: str, loader: yaml.SafeLoader, parsed: Parsed) -> None:
        super().__init__(origin, loader)
        self.parsed = parsed

    # Documents ---------------------------------------------------------------

    def document(self, node: Node, where: str) -> None:
        fields = dict(self.mapping(node, where))
        kind = fields.get("kind")
        kind_name = kind.value if isinstance(kind, ScalarNode) else None
        if kind_name in _LIST_KINDS:
            items = fields.get("items")
            if items is None or is_null(items):
                return
            for i, item in enumerate(self.sequence(items, f"{where} items")):
                if is_null(item):
                    continue
                self.document_item(item, f"{where} item {i + 1}", default_kind=_item_kind(kind_name))
            return
        self.document_item(node, where, default_kind=None)

    def document_item(self, node: Node, where: str, default_kind: str | None) -> None:
        fields = dict(self.mapping(node, where))
        kind_node = fields.get("kind")
        kind_name = str(kind_node.value) if isinstance(kind_node, ScalarNode) and not is_null(kind_node) else None
        kind_name = kind_name or default_kind
        if kind_name is None:
            self.parsed.skipped.append(f"{self.origin} {where}: no kind, not a Kubernetes object; skipped")
            return
        if kind_name not in {k.value for k in Kind}:
            self.parsed.skipped.append(f"{self.origin} {where}: kind {kind_name} is not a Cilium policy; skipped")
            return
        version_node = fields.get("apiVersion")
        version = str(version_node.value) if isinstance(version_node, ScalarNode) else GROUP_VERSION
        if version != GROUP_VERSION:
            self.parsed.skipped.append(
                f"{self.origin} {where}: {kind_name} with apiVersion {version} (flowgen reads {GROUP_VERSION}); skipped"
            )
            return
        self.parsed.policies.append(self.policy(Kind(kind_name), fields, node, where))

    def policy(self, kind: Kind, fields: dict[str, Node], node: Node, where: str) -> Policy:
        metadata = fields.get("metadata")
        if metadata is None or is_null(metadata):
            self.fail(node, f"{where}: {kind.value} has no metadata", "add metadata.name (and metadata.namespace)")
        meta: dict[str, Node] = dict(self.mapping(metadata, "metadata"))
        name_node = meta.get("name")
        if name_node is None:
            self.fail(metadata, f"{where}: metadata has no name", "add metadata.name")
        name = self.string(name_node, "metadata.name")
        namespace = meta.get("namespace")
        labels = meta.get("labels")
        annotations = meta.get("annotations")
        for key in _others(fields, {"apiVersion", "kind", "metadata", "spec", "specs", "status"}):
            self.parsed.warnings.append(f"{self.origin} {where}: top-level key {key!r} ignored")
        spec = fields.get("spec")
        specs = fields.get("specs")
        rules: list[Rule] = []
        if spec is not None and not is_null(spec):
            rules.append(self.rule(spec, "spec"))
        if specs is not None and not is_null(specs):
            rules.extend(self.rule(item, path) for path, item in self.items(specs, "specs"))
        return Policy(
            kind=kind,
            name=name,
            namespace="" if namespace is None or is_null(namespace) else self.string(namespace, "metadata.namespace"),
            specs=tuple(rules),
            labels=() if labels is None or is_null(labels) else self.labels(labels, "metadata.labels"),
            annotations=()
            if annotations is None or is_null(annotations)
            else self.labels(annotations, "metadata.annotations"),
            single=specs is None or is_null(specs),
        )

    # Rules -------------------------------------------------------------------

    def rule(self, node: Node, path: str) -> Rule:
        values: dict[str, Any] = {}
        unsupported: list[str] = []
        sections = {key: (direction, deny) for key, direction, deny in SECTION_KEYS}
        for key, value in self.mapping(node, path):
            if is_null(value):
                continue
            where = f"{path}.{key}"
            if key == "description":
                values["description"] = self.string(value, where)
            elif key == "endpointSelector":
                values["endpoint_selector"] = self.selector(value, where, unsupported, key)
            elif key == "nodeSelector":
                values["node_selector"] = self.selector(value, where, unsupported, key)
            elif key == "enableDefaultDeny":
                values["enable_default_deny"] = self.default_deny(value, where, unsupported)
            elif key in sections:
                direction, deny = sections[key]
                attribute = f"{direction.value}_deny" if deny else direction.value
                values[attribute] = tuple(self.peer(item, p, direction) for p, item in self.items(value, where))
            else:
                unsupported.append(key)
        return Rule(**values, unsupported=tuple(unsupported))

    def default_deny(self, node: Node, path: str, unsupported: list[str]) -> EnableDefaultDeny:
        values: dict[str, bool | None] = {"ingress": None, "egress": None}
        for key, value in self.mapping(node, path):
            if key in values:
                values[key] = None if is_null(value) else self.boolean(value, f"{path}.{key}")
            else:
                unsupported.append(f"enableDefaultDeny.{key}")
        return EnableDefaultDeny(ingress=values["ingress"], egress=values["egress"])

    def selector(self, node: Node, path: str, unsupported: list[str], name: str) -> Selector:
        labels: tuple[tuple[str, str], ...] = ()
        expressions: list[Requirement] = []
        for key, value in self.mapping(node, path):
            if is_null(value):
                continue
            where = f"{path}.{key}"
            if key == "matchLabels":
                labels = self.labels(value, where)
            elif key == "matchExpressions":
                for p, item in self.items(value, where):
                    expressions.append(self.requirement(item, p))
            else:
                unsupported.append(f"{name}.{key}")
        return Selector(labels, tuple(expressions))

    def requirement(self, node: Node, path: str) -> Requirement:
        fields = dict(self.mapping(node, path))
        key = fields.get("key")
        operator = fields.get("operator")
        if key is None or operator is None:
            self.fail(node, f"{path} needs both key and operator", "add the missing field")
        text = self.string(operator, f"{path}.operator")
        try:
            op = Operator(text)
        except ValueError:
            allowed = ", ".join(o.value for o in Operator)
            self.fail(operator, f"{path}.operator {text!r} is not an operator", f"use one of {allowed}")
        values = fields.get("values")
        return Requirement(
            key=self.string(key, f"{path}.key"),
            operator=op,
            values=() if values is None or is_null(values) else self.strings(values, f"{path}.values"),
        )

    def peer(self, node: Node, path: str, direction: Direction) -> PeerRule:
        if is_null(node):
            return PeerRule()
        endpoints, entities, cidrs, cidr_sets = PEER_KEYS[direction]
        values: dict[str, Any] = {}
        unsupported: list[str] = []
        for key, value in self.mapping(node, path):
            if is_null(value):
                continue
            where = f"{path}.{key}"
            if key == endpoints:
                values["endpoints"] = tuple(
                    self.selector(item, p, unsupported, f"{key}[{i}]")
                    for i, (p, item) in enumerate(self.items(value, where))
                )
            elif key == entities:
                values["entities"] = self.strings(value, where)
            elif key == cidrs:
                values["cidrs"] = self.strings(value, where)
            elif key == cidr_sets:
                values["cidr_sets"] = self.cidr_sets(value, where, key, unsupported)
            elif key == "toFQDNs":
                values["fqdns"] = tuple(self.fqdn(item, p, unsupported, key) for p, item in self.items(value, where))
            elif key == "toPorts":
                values["to_ports"] = tuple(self.port_rule(item, p) for p, item in self.items(value, where))
            elif key == "icmps":
                values["icmps"] = tuple(self.icmp(item, p, unsupported) for p, item in self.items(value, where))
            else:
                unsupported.append(key)
        return PeerRule(**values, unsupported=tuple(unsupported))

    def cidr_sets(self, node: Node, path: str, name: str, unsupported: list[str]) -> tuple[CIDRRule, ...]:
        rules = []
        for i, (p, item) in enumerate(self.items(node, path)):
            fields = dict(self.mapping(item, p))
            for key in _others(fields, {"cidr", "except"}):
                # cidrGroupRef / cidrGroupSelector: an entry without `cidr` is not modelled at all.
                unsupported.append(f"{name}[{i}].{key}")
            cidr = fields.get("cidr")
            if cidr is None or is_null(cidr):
                continue
            excepts = fields.get("except")
            rules.append(
                CIDRRule(
                    cidr=self.string(cidr, f"{p}.cidr"),
                    excepts=() if excepts is None or is_null(excepts) else self.strings(excepts, f"{p}.except"),
                )
            )
        return tuple(rules)

    def fqdn(self, node: Node, path: str, unsupported: list[str], name: str) -> FQDNSelector:
        values = {"matchName": "", "matchPattern": ""}
        for key, value in self.mapping(node, path):
            if key in values:
                values[key] = "" if is_null(value) else self.string(value, f"{path}.{key}")
            else:
                unsupported.append(f"{name}.{key}")
        return FQDNSelector(match_name=values["matchName"], match_pattern=values["matchPattern"])

    def icmp(self, node: Node, path: str, unsupported: list[str]) -> tuple[ICMPField, ...]:
        fields: list[ICMPField] = []
        for key, value in self.mapping(node, path):
            if key != "fields":
                unsupported.append(f"icmps.{key}")
                continue
            if is_null(value):
                continue
            for p, item in self.items(value, f"{path}.fields"):
                entry = dict(self.mapping(item, p))
                for extra in _others(entry, {"type", "family"}):
                    unsupported.append(f"icmps.fields.{extra}")
                type_node = entry.get("type")
                if type_node is None or is_null(type_node):
                    self.fail(item, f"{p} has no type", "add type: a number 0-255 or a name such as EchoRequest")
                family = entry.get("family")
                fields.append(
                    ICMPField(
                        type=self.integer(type_node, f"{p}.type")
                        if type_node.tag == INT
                        else self.string(type_node, f"{p}.type"),
                        family="IPv4" if family is None or is_null(family) else self.string(family, f"{p}.family"),
                    )
                )
        return tuple(fields)

    # Ports and L7 ------------------------------------------------------------

    def port_rule(self, node: Node, path: str) -> PortRule:
        ports: tuple[PortProtocol, ...] = ()
        rules: L7Rules | None = None
        unsupported: list[str] = []
        for key, value in self.mapping(node, path):
            if is_null(value):
                continue
            where = f"{path}.{key}"
            if key == "ports":
                ports = tuple(
                    self.port(item, p, i, unsupported) for i, (p, item) in enumerate(self.items(value, where))
                )
            elif key == "rules":
                rules = self.l7(value, where, unsupported)
            else:
                unsupported.append(key)
        return PortRule(ports=ports, rules=rules, unsupported=tuple(unsupported))

    def port(self, node: Node, path: str, index: int, unsupported: list[str]) -> PortProtocol:
        port = "0"
        protocol = L4Protocol.ANY
        end_port: int | None = None
        for key, value in self.mapping(node, path):
            if is_null(value):
                continue
            where = f"{path}.{key}"
            if key == "port":
                if isinstance(value, ScalarNode) and value.tag == INT:
                    # The CRD wants a string; keep the number and let validate() report it.
                    port = str(self.integer(value, where))
                    unsupported.append(f"ports[{index}].port{INT_PORT}")
                else:
                    port = self.string(value, where)
            elif key == "protocol":
                text = self.string(value, where)
                try:
                    protocol = L4Protocol(text)
                except ValueError:
                    allowed = ", ".join(p.value for p in L4Protocol)
                    self.fail(
                        value,
                        f"{where} {text!r} is not a protocol flowgen reads",
                        f"use one of {allowed} (upper case, as the CRD requires)",
                    )
            elif key == "endPort":
                end_port = self.integer(value, where)
            else:
                unsupported.append(f"ports[{index}].{key}")
        return PortProtocol(port=port, protocol=protocol, end_port=end_port)

    def l7(self, node: Node, path: str, unsupported: list[str]) -> L7Rules:
        values: dict[str, Any] = {}
        for key, value in self.mapping(node, path):
            if is_null(value):
                continue
            where = f"{path}.{key}"
            if key == "http":
                values["http"] = tuple(
                    self.http(item, p, i, unsupported) for i, (p, item) in enumerate(self.items(value, where))
                )
            elif key == "dns":
                values["dns"] = tuple(
                    self.fqdn(item, p, unsupported, "rules.dns") for p, item in self.items(value, where)
                )
            elif key == "kafka":
                values["kafka"] = tuple(
                    self.kafka(item, p, i, unsupported) for i, (p, item) in enumerate(self.items(value, where))
                )
            else:
                unsupported.append(f"rules.{key}")
        return L7Rules(**values)

    def http(self, node: Node, path: str, index: int, unsupported: list[str]) -> HTTPRule:
        values: dict[str, Any] = {}
        for key, value in self.mapping(node, path):
            if is_null(value):
                continue
            where = f"{path}.{key}"
            if key in ("method", "path", "host"):
                values[key] = self.string(value, where)
            elif key == "headers":
                values["headers"] = self.strings(value, where)
            else:
                unsupported.append(f"rules.http[{index}].{key}")
        return HTTPRule(**values)

    def kafka(self, node: Node, path: str, index: int, unsupported: list[str]) -> KafkaRule:
        names = {
            "role": "role",
            "apiKey": "api_key",
            "apiVersion": "api_version",
            "clientID": "client_id",
            "topic": "topic",
        }
        values: dict[str, str] = {}
        for key, value in self.mapping(node, path):
            if is_null(value):
                continue
            if key in names:
                values[names[key]] = self.string(value, f"{path}.{key}")
            else:
                unsupported.append(f"rules.kafka[{index}].{key}")
        return KafkaRule(**values)


def _others(fields: dict[str, Node], known: set[str]) -> list[str]:
    """The keys of `fields` not in `known`, in document order (so the model is deterministic)."""
    return [key for key in fields if key not in known]


def _item_kind(list_kind: str) -> str | None:
    """The kind of the items of a typed list (their `kind` may be left out); None for `List`."""
    return list_kind.removesuffix("List") or None
