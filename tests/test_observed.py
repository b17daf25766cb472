"""graph.observed.load: the evidence every command starts from, and the errors when there is none."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest

from flowgen.errors import InputError, StoreError
from flowgen.graph.builder import GraphBuilder
from flowgen.graph.observed import load
from flowgen.graph.store import Store
from flowgen.ingest.files import read_files
from tests.conftest import DEMO

LATE = datetime(2027, 1, 1, tzinfo=UTC)


def _store(root: Path) -> Store:
    builder = GraphBuilder()
    for flow in read_files([str(DEMO)]):
        builder.add(flow)
    store = Store(root)
    store.write_run("demo", builder.graph(), {})
    return store


def _quiet(message: str) -> None:
    raise AssertionError(f"unexpected warning: {message}")


def test_files_and_store_give_the_same_edges(tmp_path: Path) -> None:
    _store(tmp_path)
    from_files = load([str(DEMO)], tmp_path / "unused", None, warn=_quiet)
    from_store = load(None, tmp_path, None, warn=_quiet)
    assert from_files.edges() == from_store.edges()
    assert from_files.samples is None and from_store.samples is None


def test_samples_only_from_files_and_only_when_asked(tmp_path: Path) -> None:
    _store(tmp_path)
    with_samples = load([str(DEMO)], tmp_path, None, warn=_quiet, samples=True)
    assert with_samples.samples
    assert set(with_samples.samples) <= {edge.key for edge in with_samples.edges()}
    assert load(None, tmp_path, None, warn=_quiet, samples=True).samples is None


def test_a_damaged_store_file_is_an_error_unless_partial_is_allowed(tmp_path: Path) -> None:
    store = _store(tmp_path)
    good = store.files()[0]
    damaged = good.with_name("cut.parquet")
    damaged.write_bytes(good.read_bytes()[:100])
    with pytest.raises(StoreError) as caught:
        load(None, tmp_path, None, warn=_quiet)
    message = str(caught.value)
    assert message.startswith(f"the store at {tmp_path} has files that cannot be read: {damaged} (")
    assert message.endswith(
        f"Move them out of {tmp_path / 'observations'} (they may be cut short), "
        "or pass --allow-partial to work from the rest"
    )
    warnings: list[str] = []
    partial = load(None, tmp_path, None, warn=warnings.append, allow_partial=True)
    assert partial.edges() and len(warnings) == 1
    assert warnings[0].startswith(f"working from part of the store (--allow-partial); skipped: {damaged} (")


@pytest.mark.parametrize("inputs", [pytest.param(None, id="store"), pytest.param([str(DEMO)], id="files")])
def test_a_namespace_with_no_evidence_says_which_namespaces_there_are(tmp_path: Path, inputs: list[str] | None) -> None:
    _store(tmp_path)
    with pytest.raises(InputError) as caught:
        load(inputs, tmp_path, None, warn=_quiet, namespaces=["nosuchns"])
    where = f"the flows in {DEMO}" if inputs else f"the store at {tmp_path}"
    assert str(caught.value) == (
        f"nothing for namespace nosuchns: evidence in {where} runs from 2026-11-20 09:01 to 2026-11-20 09:26 UTC, "
        "for namespaces batch, data, kube-system, monitoring, shop. Check -n"
    )


def test_a_since_after_all_evidence_says_when_the_evidence_is(tmp_path: Path) -> None:
    _store(tmp_path)
    with pytest.raises(InputError) as caught:
        load(None, tmp_path, LATE, warn=_quiet)
    assert str(caught.value) == (
        f"nothing since 2027-01-01 00:00 UTC: evidence in the store at {tmp_path} runs from "
        "2026-11-20 09:01 to 2026-11-20 09:26 UTC. Pass an earlier --since"
    )
    with pytest.raises(InputError) as from_files:
        load([str(DEMO)], tmp_path, LATE, warn=_quiet)
    assert str(from_files.value) == (
        f"nothing since 2027-01-01 00:00 UTC: all 444 flows in {DEMO} are older. Pass an earlier --since"
    )


def test_an_empty_store_says_how_to_fill_it(tmp_path: Path) -> None:
    with pytest.raises(InputError, match=r"holds no observations yet; run `flowgen observe` first"):
        load(None, tmp_path, None, warn=_quiet)
