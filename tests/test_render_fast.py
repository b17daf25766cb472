"""render.block_yaml (the fast emitter `dump` uses) writes exactly what PyYAML's emitter writes.

The reference is render.pyyaml_dump, PyYAML with flowgen's Dumper. Documents come from the
policy strategies of test_render.py and from a strategy of arbitrary documents of the same
shapes (mappings, sequences, strings of any characters, numbers, bools, commented mappings).
"""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from flowgen.policy import render
from flowgen.policy.model import Kind, Policy, Rule, Selector
from tests.test_render import PROPERTY, TRICKY, policies

# Scalars: anything, and the kinds of strings that are close to YAML syntax.
_NEAR_SYNTAX = [
    *TRICKY,
    "",
    " ",
    "a: b",
    "a:",
    ":a",
    "a #b",
    "#a",
    "- a",
    "-a",
    "---",
    "...",
    "? a",
    "[a]",
    "a,b",
    "{a}",
    "*a",
    "&a",
    "!a",
    "|",
    ">",
    "'a'",
    '"a"',
    "%a",
    "@a",
    "`a",
    "a\nb",
    "a\u2028b",
    "caf\xe9",
    "\x00",
    "\ufeff",
    ".inf",
    ".NaN",
    "~",
    "<<",
    "=",
    "2026-11-20",
    "1:20",
    "0b101",
    "_a",
    "/a/b",
    "a" * 127,
    "a" * 128,
    "k8s:io.kubernetes.pod.namespace",
]
strings = st.one_of(st.sampled_from(_NEAR_SYNTAX), st.text(max_size=12), st.text("ab:#-/ .'\"\n", max_size=6))
scalars = st.one_of(strings, st.integers(-5, 70000), st.booleans())


def _commented(items: dict[str, object], comment: str) -> dict[str, object]:
    return render._Commented(items, comment) if comment else items


def _mappings(values: st.SearchStrategy[object]) -> st.SearchStrategy[dict[str, object]]:
    return st.builds(_commented, st.dictionaries(strings, values, max_size=4), st.one_of(st.just(""), strings))


documents = st.recursive(
    scalars, lambda children: st.one_of(st.lists(children, max_size=3), _mappings(children)), max_leaves=25
)


@PROPERTY
@given(st.dictionaries(strings, documents, max_size=5))
def test_block_yaml_writes_what_pyyaml_writes(document: dict[str, object]) -> None:
    try:
        fast = render.block_yaml(document)
    except render._UnsupportedError:
        return
    assert fast == render.pyyaml_dump(document)


def _reference(policy: Policy) -> str:
    header = "".join(f"{line}\n" for entry in policy.header for line in render.comment_lines(entry))
    return header + render.pyyaml_dump(render._document(policy, render._with_comment))


@PROPERTY
@given(policies())
def test_dump_writes_what_pyyaml_writes(policy: Policy) -> None:
    assert render.dump([policy]) == _reference(policy)


@pytest.mark.parametrize(
    "labels",
    [
        pytest.param({"a" * 130: "x"}, id="complex-key"),
        pytest.param({"app": "a\nb"}, id="line-break-in-value"),
        pytest.param({"app": "caf\xe9", "k8s:io.kubernetes.pod.namespace": "prod"}, id="non-ascii"),
    ],
)
def test_documents_outside_the_fast_shapes_still_match(labels: dict[str, str]) -> None:
    policy = Policy(Kind.CNP, "api", "prod", (Rule(endpoint_selector=Selector(tuple(labels.items()))),), header=("h",))
    assert render.dump([policy]) == _reference(policy)
