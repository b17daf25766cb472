"""Cilium's CRD schemas as a validator for rendered documents (a helper, not a test module).

The CRDs in ../shared/ref/crds are OpenAPI v3 schemas written for the Kubernetes API
server; ref cilium-policy.md §1 lists what it takes to use them with `jsonschema`:

- the API server prunes unknown fields instead of rejecting them, so every object node
  with `type: object` and `properties` is closed (`additionalProperties: false`); the
  untyped `anyOf` / `oneOf` branches (`{properties: {ingress: {}}, required: [...]}`) are
  left open, or every document would fail;
- `x-kubernetes-*` keys are ignored, except `int-or-string` (the `anyOf` it implies),
  `list-type: set` (`uniqueItems`), `preserve-unknown-fields` (the node stays open), and the
  one CEL rule of 1.20 (`has(self.spec) || has(self.specs)`), evaluated by hand;
- `nullable` becomes a `null` type;
- formats: `cidr` (Go `net.ParseCIDR`), `date-time`, `int32` and `int64` are checked;
  `idn-hostname` is not (the API server does not enforce it, and HTTP host regexes would fail);
- Go's `\\PC` (no control characters) is not Python syntax and is approximated.
"""

from __future__ import annotations

import ipaddress
import re
from datetime import datetime
from functools import cache
from typing import Any

import pytest
import yaml

from tests.conftest import ROOT

CRDS = ROOT.parent / "shared" / "ref" / "crds"
_RELEASES = {"1.19": CRDS, "1.20": CRDS / "main-1.20.0-dev"}
_FILES = {
    "CiliumNetworkPolicy": "ciliumnetworkpolicies.yaml",
    "CiliumClusterwideNetworkPolicy": "ciliumclusterwidenetworkpolicies.yaml",
}
_SPEC_OR_SPECS = "has(self.spec) || has(self.specs)"


def crd_errors(document: dict[str, Any], kind: str, release: str = "1.19") -> list[str]:
    """What the API server's schema check (with strict field validation) says about `document`:
    one `path: message` per problem, sorted; empty when the CRD of `release` accepts it."""
    validator, rules = _validator(str(kind), release)
    errors = sorted(
        f"{'.'.join(str(p) for p in error.absolute_path) or '<root>'}: {error.message}"
        for error in validator.iter_errors(document)
    )
    for rule in rules:
        if rule.get("rule") == _SPEC_OR_SPECS and "spec" not in document and "specs" not in document:
            errors.append(f"<root>: {rule.get('message', rule['rule'])}")
    return errors


@cache
def _validator(kind: str, release: str) -> tuple[Any, list[dict[str, str]]]:
    jsonschema = pytest.importorskip("jsonschema", reason="jsonschema is a dev dependency: pip install -e '.[dev]'")
    path = _RELEASES[release] / _FILES[kind]
    if not path.is_file():
        pytest.skip(f"CRD not found at {path} (../shared is not checked out beside this repo)")
    crd = yaml.safe_load(path.read_text())
    (version,) = (v for v in crd["spec"]["versions"] if v["name"] == "v2")
    schema = version["schema"]["openAPIV3Schema"]
    checker = jsonschema.FormatChecker(formats=())
    checker.checks("cidr", raises=ValueError)(_cidr)
    checker.checks("date-time", raises=ValueError)(_date_time)
    checker.checks("int32")(lambda n: not isinstance(n, int) or -(2**31) <= n < 2**31)
    checker.checks("int64")(lambda n: not isinstance(n, int) or -(2**63) <= n < 2**63)
    validator = jsonschema.Draft4Validator(_convert(schema), format_checker=checker)
    return validator, list(schema.get("x-kubernetes-validations", []))


def _convert(node: dict[str, Any]) -> dict[str, Any]:
    """One schema node for Draft 4 (`properties` maps names to schemas; their names are kept as they are)."""
    out: dict[str, Any] = {}
    for key, value in node.items():
        if key.startswith("x-kubernetes-") or key in ("description", "nullable"):
            continue
        if key == "properties":
            out[key] = {name: _convert(child) for name, child in value.items()}
        elif key in ("items", "not") or (key == "additionalProperties" and isinstance(value, dict)):
            out[key] = _convert(value)
        elif key in ("anyOf", "oneOf", "allOf"):
            out[key] = [_convert(branch) for branch in value]
        else:
            out[key] = value
    if node.get("x-kubernetes-int-or-string") and "anyOf" not in node:
        out["anyOf"] = [{"type": "integer"}, {"type": "string"}]
    if node.get("x-kubernetes-list-type") == "set":
        out["uniqueItems"] = True
    if node.get("nullable") and "type" in node:
        out["type"] = [node["type"], "null"]
    if isinstance(out.get("pattern"), str):
        out["pattern"] = out["pattern"].replace(r"\PC", r"[^\x00-\x1f\x7f-\x9f]")
    if (
        node.get("type") == "object"
        and "properties" in node
        and "additionalProperties" not in node
        and not node.get("x-kubernetes-preserve-unknown-fields")
    ):
        out["additionalProperties"] = False
    return out


def _cidr(value: object) -> bool:
    """Go's net.ParseCIDR: address/length, no zone, length without sign or leading zeros."""
    if not isinstance(value, str):
        return True
    address, slash, length = value.partition("/")
    ip = ipaddress.ip_address(address)  # raises ValueError
    if not slash or "%" in address or not re.fullmatch(r"0|[1-9][0-9]*", length) or int(length) > ip.max_prefixlen:
        raise ValueError(value)
    return True


def _date_time(value: object) -> bool:
    if isinstance(value, str):
        datetime.fromisoformat(value.replace("Z", "+00:00"))
    return True
