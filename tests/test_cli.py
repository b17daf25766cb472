"""The command line as a user runs it: real files, stdin, bad input, exit codes."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import orjson
from typer.testing import CliRunner

from flowgen import __version__
from flowgen.cli import app
from tests.conftest import DEMO, ROOT, sample_files

runner = CliRunner()


def test_version() -> None:
    result = runner.invoke(app, ["--version"])
    assert result.exit_code == 0 and result.output == f"flowgen {__version__}\n"


def test_observe_demo_summary() -> None:
    result = runner.invoke(app, ["observe", "--input-file", str(DEMO), "-o", "text"])
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    assert lines[0] == "Read 445 records from 1 input(s): 444 flows"
    assert "  skipped:    lost_events 1" in lines
    assert "  lost:       3 (HUBBLE_RING_BUFFER 3)" in lines
    assert "  drops:      POLICY_DENIED 2" in lines
    assert "  namespaces: batch 22, data 86, kube-system 90, monitoring 54, shop 432" in lines


def test_observe_json_and_namespace_filter() -> None:
    result = runner.invoke(app, ["observe", "-i", str(DEMO), "-n", "batch", "--output", "json"])
    assert result.exit_code == 0
    summary = orjson.loads(result.stdout)
    assert summary["kept"] == 22 and summary["filtered_out"] == 444 - 22
    assert summary["first"] == "2026-11-20T09:16:00.075710+00:00"
    assert summary["namespaces"] == {"batch": 22, "kube-system": 12, "shop": 10}


def test_observe_reads_every_sample() -> None:
    files = [str(p) for p in sample_files()]
    result = runner.invoke(app, ["observe", "--output", "json", *[a for f in files for a in ("-i", f)]])
    assert result.exit_code == 0
    summary = orjson.loads(result.stdout)
    assert summary["flows"] == 33 and summary["malformed"] == 0


def test_malformed_line_is_reported_and_strict_fails(tmp_path: Path) -> None:
    lines = DEMO.read_bytes().splitlines()
    bad = tmp_path / "bad.jsonl"
    bad.write_bytes(b"\n".join([lines[0], lines[1][:50], lines[2]]) + b"\n")
    result = runner.invoke(app, ["observe", "-i", str(bad), "-o", "text"])
    assert result.exit_code == 0
    where = f"{bad} line 2: not valid JSON: the line ends in the middle of a value (truncated?)"
    assert f"Warning: skipping malformed record: {where}" in result.stderr
    assert "  malformed:  1" in result.stdout and f"              {where}" in result.stdout
    strict = runner.invoke(app, ["observe", "-i", str(bad), "--strict"])
    assert strict.exit_code == 1
    assert strict.stderr.startswith(f"Error: reading {where}. Fix or remove that line")


def test_missing_file_is_a_clear_error() -> None:
    result = runner.invoke(app, ["observe", "-i", "nope.jsonl"])
    assert result.exit_code == 1
    assert result.stderr == "Error: cannot read nope.jsonl: no such file. Check the path\n"


def test_no_relay_says_how_to_reach_one() -> None:
    result = runner.invoke(app, ["observe", "--server", "127.0.0.1:9", "--timeout", "1s"])
    assert result.exit_code == 1
    assert result.stderr.startswith("Error: cannot connect to Hubble Relay at 127.0.0.1:9")


def test_no_relay_within_a_short_run_is_an_error_and_writes_nothing(tmp_path: Path) -> None:
    store = tmp_path / "store"
    args = ["observe", "--server", "127.0.0.1:9", "--duration", "1s", "--timeout", "5s", "--store", str(store)]
    result = runner.invoke(app, args)
    assert result.exit_code == 1
    assert result.stderr.startswith("Error: cannot connect to Hubble Relay at 127.0.0.1:9: ")
    assert not store.exists()


def test_stdin_through_the_installed_command() -> None:
    flowgen = Path(sys.executable).parent / "flowgen"
    done = subprocess.run(
        [str(flowgen), "observe", "-i", "-", "--no-store"],
        input=DEMO.read_bytes(),
        capture_output=True,
        check=True,
        cwd=ROOT,
    )
    assert orjson.loads(done.stdout)["flows"] == 444


def test_every_command_has_an_example_in_its_help() -> None:
    for command in app.registered_commands:
        assert command.callback is not None and "Example:" in (command.callback.__doc__ or ""), command.name
