"""`flowgen observe` against a real loopback relay: the store, the graph, signals, saved flows, TLS."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import orjson
import pytest
from google.protobuf import json_format
from typer.testing import CliRunner

from flowgen._pb.observer import observer_pb2
from flowgen.cli import app
from tests.conftest import DEMO, ROOT
from tests.relay_server import SERVER_NAME, FakeRelay, make_pki

EXPECTED = ROOT / "fixtures" / "expected" / "demo"
FLOWGEN = Path(sys.executable).parent / "flowgen"
runner = CliRunner()


def _demo_events() -> list[observer_pb2.GetFlowsResponse]:
    return [json_format.Parse(line, observer_pb2.GetFlowsResponse()) for line in DEMO.read_bytes().splitlines()]


@pytest.fixture
def relay() -> Iterator[FakeRelay]:
    with FakeRelay(_demo_events()) as server:
        yield server


def _graph_csv(store: Path) -> str:
    result = runner.invoke(app, ["graph", "--store", str(store), "--format", "csv"])
    assert result.exit_code == 0, result.output
    return result.stdout


def test_live_stream_fills_the_store_with_the_same_graph_as_files(relay: FakeRelay, tmp_path: Path) -> None:
    store = tmp_path / "store"
    result = runner.invoke(
        app, ["observe", "--server", relay.address, "--duration", "2s", "--store", str(store), "-o", "json"]
    )
    assert result.exit_code == 0, result.output
    summary = orjson.loads(result.stdout)
    assert summary["kept"] == 444 and summary["lost_events"] == {"HUBBLE_RING_BUFFER": 3}
    assert summary["stopped_by"] is None and summary["checkpoint"]
    assert _graph_csv(store) == (EXPECTED / "graph.csv").read_text()
    (request,) = relay.requests
    assert request.follow and "source" in request.field_mask.paths and "Summary" not in request.field_mask.paths


def test_namespace_filter_is_sent_to_the_server(relay: FakeRelay, tmp_path: Path) -> None:
    result = runner.invoke(
        app, ["observe", "--server", relay.address, "--duration", "1s", "-n", "batch", "--no-store", "-o", "json"]
    )
    assert result.exit_code == 0, result.output
    (request,) = relay.requests
    assert [list(f.source_pod) + list(f.destination_pod) for f in request.whitelist] == [["batch/"], ["batch/"]]
    assert orjson.loads(result.stdout)["kept"] == 22


def test_saved_flows_read_back_to_the_same_graph(relay: FakeRelay, tmp_path: Path) -> None:
    saved = tmp_path / "flows.jsonl"
    result = runner.invoke(
        app, ["observe", "--server", relay.address, "--duration", "2s", "--save-flows", str(saved), "--no-store"]
    )
    assert result.exit_code == 0, result.output
    assert len(saved.read_bytes().splitlines()) == 444
    again = runner.invoke(app, ["graph", "-i", str(saved), "--format", "csv"])
    assert again.stdout == (EXPECTED / "graph.csv").read_text()


def test_tls_flags_reach_a_tls_relay(tmp_path: Path) -> None:
    pki = make_pki(tmp_path)
    with FakeRelay(_demo_events(), tls=pki.server_tls(mutual=True)) as server:
        result = runner.invoke(
            app,
            [
                "observe",
                "--server",
                f"tls://{server.address}",
                "--tls-ca-cert-files",
                str(pki.ca),
                "--tls-client-cert-file",
                str(pki.client_cert),
                "--tls-client-key-file",
                str(pki.client_key),
                "--tls-server-name",
                SERVER_NAME,
                "--duration",
                "1s",
                "--no-store",
                "-o",
                "json",
            ],
        )
    assert result.exit_code == 0, result.output
    assert orjson.loads(result.stdout)["kept"] == 444


def test_sigterm_keeps_the_last_checkpoint(relay: FakeRelay, tmp_path: Path) -> None:
    store = tmp_path / "store"
    env = {**os.environ, "FLOWGEN_STORE": str(store)}
    running = subprocess.Popen(
        [str(FLOWGEN), "observe", "--server", relay.address, "--checkpoint", "1s", "-o", "json"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env=env,
    )
    runs = store / "observations"
    deadline = time.monotonic() + 30
    while not (runs.is_dir() and any(runs.glob("*.parquet"))):
        assert running.poll() is None, running.communicate()
        assert time.monotonic() < deadline, "no checkpoint within 30 s"
        time.sleep(0.1)
    running.send_signal(signal.SIGTERM)
    stdout, stderr = running.communicate(timeout=30)
    assert running.returncode == 0, stderr
    summary = orjson.loads(stdout)
    assert summary["stopped_by"] == "SIGTERM" and summary["kept"] == 444
    assert _graph_csv(store) == (EXPECTED / "graph.csv").read_text()
    assert not [p for p in runs.iterdir() if p.name.endswith(".tmp")]


def test_relay_restart_mid_run_is_shown_and_counted_once(tmp_path: Path) -> None:
    events = _demo_events()
    store = tmp_path / "store"
    with FakeRelay(events[:200]) as server:
        env = {**os.environ, "FLOWGEN_STORE": str(store)}
        running = subprocess.Popen(
            [str(FLOWGEN), "observe", "--server", server.address, "--duration", "6s", "-o", "json"],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            env=env,
        )
        server.wait_sent(200)
        server.stop()
        server.append(*events[200:])
        server.start()
        stdout, stderr = running.communicate(timeout=60)
    assert running.returncode == 0, stderr
    assert "Relay stream lost" in stderr.decode() and "resuming from" in stderr.decode()
    summary = orjson.loads(stdout)
    assert summary["reconnects"] == 1 and summary["kept"] == 444
    assert _graph_csv(store) == (EXPECTED / "graph.csv").read_text()
