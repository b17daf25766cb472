"""The command line as a user runs it: real files, stdin, bad input, exit codes."""

from __future__ import annotations

import re
import signal
import subprocess
import sys
import time
from datetime import date, timedelta
from pathlib import Path

import orjson
import typer
from typer.testing import CliRunner

from flowgen import __version__
from flowgen.cli import app
from tests.conftest import DEMO, ROOT, sample_files

runner = CliRunner()
COMMANDS = sorted(typer.main.get_command(app).commands)  # type: ignore[attr-defined]


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
    # (--no-store: into the same store, the lines the first run took would be skipped.)
    strict = runner.invoke(app, ["observe", "-i", str(bad), "--strict", "--no-store"])
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


def test_a_file_without_any_flow_is_an_error_with_capped_warnings(tmp_path: Path) -> None:
    junk = tmp_path / "junk.jsonl"
    junk.write_bytes(b"".join(b"not json %d\n" % n for n in range(1000)))
    store = tmp_path / "store"
    result = runner.invoke(app, ["observe", "-i", str(junk), "--store", str(store)])
    assert result.exit_code == 1
    warnings = [line for line in result.stderr.splitlines() if line.startswith("Warning:")]
    assert len(warnings) == 11
    assert warnings[-1] == "Warning: further malformed records are counted, not shown one by one (see the summary)"
    assert result.stderr.splitlines()[-1] == (
        f"Error: no Hubble flow in {junk} (1000 records read, 1000 malformed); nothing was stored. "
        "Pass files written by `hubble observe -o json` or the Hubble exporter"
    )
    assert not store.exists()


def test_reading_a_file_again_into_the_same_store_adds_nothing(tmp_path: Path) -> None:
    store = tmp_path / "store"
    first = runner.invoke(app, ["observe", "-i", str(DEMO), "--store", str(store)])
    again = runner.invoke(app, ["observe", "-i", str(DEMO), "--store", str(store), "-o", "json"])
    assert first.exit_code == again.exit_code == 0
    assert orjson.loads(again.stdout)["already_observed"] == 445
    assert "Nothing new:" in again.stderr
    assert len(list((store / "observations").iterdir())) == 1


def test_an_interrupted_read_exits_130_and_the_next_run_resumes_it(tmp_path: Path) -> None:
    """SIGINT while reading a file: exit 130 with true counters; reading it again adds exactly
    the rest, so the store ends up with the graph of one whole read."""
    big = tmp_path / "big.jsonl"
    lines = DEMO.read_bytes().splitlines(keepends=True)
    with big.open("wb") as out:
        # 400 copies of the demo, each on its own day: distinct flows, as a long capture has.
        for copy in range(400):
            day = (date(2026, 11, 20) + timedelta(days=copy)).isoformat().encode()
            out.writelines(line.replace(b"2026-11-20T", day + b"T") for line in lines)
    flowgen = Path(sys.executable).parent / "flowgen"
    interrupted, whole = tmp_path / "interrupted", tmp_path / "whole"
    running = subprocess.Popen(
        [str(flowgen), "observe", "-i", str(big), "--store", str(interrupted), "--checkpoint", "0.1s", "-o", "json"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    runs = interrupted / "observations"
    deadline = time.monotonic() + 60
    while not (runs.is_dir() and any(runs.glob("*.parquet"))):
        assert running.poll() is None, running.communicate()
        assert time.monotonic() < deadline, "no checkpoint within 60 s"
        time.sleep(0.05)
    running.send_signal(signal.SIGINT)
    stdout, stderr = running.communicate(timeout=60)
    assert running.returncode == 130, stderr
    summary = orjson.loads(stdout)
    assert summary["stopped_by"] == "SIGINT"
    assert 0 < summary["lines"] < len(lines) * 400 and summary["flows"] == summary["kept"] > 0
    resumed = runner.invoke(app, ["observe", "-i", str(big), "--store", str(interrupted), "-o", "json"])
    assert resumed.exit_code == 0, resumed.output
    assert orjson.loads(resumed.stdout)["already_observed"] == summary["lines"]
    runner.invoke(app, ["observe", "-i", str(big), "--store", str(whole)])
    resumed_edges, whole_edges = (
        orjson.loads(runner.invoke(app, ["graph", "--store", str(s), "-f", "json"]).stdout)
        for s in (interrupted, whole)
    )
    # Every event counted once. Connections ("flows") may differ by one where a connection seen at
    # both ends straddles the interruption (the two runs do not share their dedupe memory).
    connections = sum(e.pop("flows") for e in resumed_edges) - sum(e.pop("flows") for e in whole_edges)
    assert resumed_edges == whole_edges
    assert 0 <= connections <= 1


def _hostile_demo(tmp_path: Path) -> Path:
    """The demo with an OSC sequence in a label value and a screen-clearing CSI in a path."""
    text = DEMO.read_text()
    text = text.replace("app.kubernetes.io/name=api", "app.kubernetes.io/name=api\\u001b]0;owned\\u0007")
    text = text.replace("/api/v1/cart/items", "/api/v1/\\u001b[2Jcart/items")
    hostile = tmp_path / "hostile.jsonl"
    hostile.write_text(text)
    return hostile


def test_escape_sequences_never_reach_the_terminal_raw(tmp_path: Path) -> None:
    """Label values and paths come from workloads: printed output escapes control characters,
    JSON keeps the data (JSON-escaped)."""
    hostile = _hostile_demo(tmp_path)
    table = runner.invoke(app, ["graph", "-i", str(hostile), "-n", "shop"])
    assert table.exit_code == 0
    assert "\x1b" not in table.stdout and "\x07" not in table.stdout
    assert "shop/api\\x1b]0;owned\\x07" in table.stdout
    assert "/api/v1/\\x1b[2Jcart/items" in table.stdout
    generated = runner.invoke(app, ["generate", "-n", "shop", "-i", str(hostile)])
    assert "\x1b" not in generated.stderr
    data = runner.invoke(app, ["graph", "-i", str(hostile), "-n", "shop", "-o", "json"])
    paths = {e["l7"]["path"] for e in orjson.loads(data.stdout) if e["l7"] and e["l7"].get("path")}
    assert "/api/v1/\x1bcart/items".replace("\x1b", "\x1b[2J") in paths


def test_dash_h_is_help_everywhere() -> None:
    for args in ([], *([name] for name in COMMANDS)):
        result = runner.invoke(app, [*args, "-h"])
        assert result.exit_code == 0, args
        assert result.stdout.startswith("Usage: flowgen"), args


def test_help_shows_readable_metavars_and_fits_80_columns() -> None:
    for command in COMMANDS:
        text = runner.invoke(app, [command, "--help"], terminal_width=80).stdout
        assert "<bool>" not in text and "list[" not in text and "TEXT" not in text, command
        assert max(len(line) for line in text.splitlines()) <= 80, command


def test_dash_o_is_the_output_format_for_every_command(tmp_path: Path) -> None:
    for command in ("observe", "graph", "generate", "verify", "diff"):
        text = runner.invoke(app, [command, "--help"], terminal_width=200).stdout
        line = next(line for line in text.splitlines() if re.match(r"\s+(--output|-o)\b", line))
        assert re.match(r"\s+-o, (-f, )?--output(, --format)? FORMAT", line), (command, line)
    printed = runner.invoke(app, ["generate", "-n", "shop", "-i", str(DEMO), "-o", "json"])
    assert orjson.loads(printed.stdout)["kind"] == "List"
    folder = runner.invoke(app, ["generate", "-n", "shop", "-i", str(DEMO), "-o", "json", "-d", str(tmp_path)])
    assert folder.exit_code == 2
    assert "--output-dir writes YAML files" in folder.stderr


def test_live_only_options_with_an_input_file_are_an_error() -> None:
    for extra in (["--server", "localhost:4245"], ["--tls"]):
        result = runner.invoke(app, ["observe", "-i", str(DEMO), *extra])
        assert result.exit_code == 2, extra
        assert "--input-file" in result.stderr, extra


def test_help_starts_quickly_without_the_heavy_modules() -> None:
    """`flowgen --help` imports neither pandas, pyarrow nor grpc (they cost most of a second)."""
    heavy = "('pandas', 'pyarrow', 'grpc', 'rich')"
    code = f"import sys; from flowgen.cli import app; print([m for m in {heavy} if m in sys.modules])"
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert done.stdout.strip() == "[]"


def test_the_readme_shows_the_demos_true_probe_report(tmp_path: Path) -> None:
    """README's probe report of the demo is what `verify --probes` prints today."""
    command = "$ flowgen verify --probes -p policies/ -i fixtures/flows/demo.jsonl"
    readme = (ROOT / "README.md").read_text().splitlines()
    start = next(i for i, line in enumerate(readme) if line.strip() == command) + 1
    shown = []
    for line in readme[start:]:
        if not line.strip():
            break
        shown.append(line.removeprefix("    "))
    policies = tmp_path / "policies"
    assert runner.invoke(app, ["generate", "-A", "--default-deny", "-i", str(DEMO), "-d", str(policies)]).exit_code == 0
    probed = runner.invoke(app, ["verify", "--probes", "-p", str(policies), "-i", str(DEMO)])
    assert probed.stdout.splitlines() == shown


def test_a_gzip_file_cut_short_keeps_what_was_read_and_fails(tmp_path: Path) -> None:
    """An exporter file cut short (or still being written) and one that is not gzip after all: the
    flows of the other files and of the lines before the cut are stored, each broken file is named
    with where it stopped, the run exits 1 (never a traceback), and once the file is whole the next
    run reads only the rest."""
    import gzip  # noqa: PLC0415

    whole = gzip.compress(DEMO.read_bytes() * 30)
    cut, corrupt = tmp_path / "cut.jsonl.gz", tmp_path / "corrupt.jsonl.gz"
    cut.write_bytes(whole[: len(whole) * 2 // 3])
    corrupt.write_bytes(whole[:10] + b"not deflate data" * 64)
    store = tmp_path / "store"
    args = ["observe", "-i", str(DEMO), "-i", str(cut), "-i", str(corrupt), "--store", str(store), "-o", "json"]
    first = runner.invoke(app, args)
    assert first.exit_code == 1, first.output
    assert "Traceback" not in first.output
    summary = orjson.loads(first.stdout)
    assert summary["checkpoint"] is not None
    (cut_broken, corrupt_broken) = summary["broken"]
    where = re.search(r"stopped after line (\d+)", cut_broken)
    assert where is not None, cut_broken
    read_from_cut = int(where.group(1))
    assert 0 < read_from_cut < summary["lines"]
    assert corrupt_broken.startswith(f"{corrupt} stopped at its start")
    assert f"{cut} stopped after line" in first.stderr and "not gzip" in first.stderr
    # The exporter finishes the file: the next run reads only what the first did not.
    cut.write_bytes(whole)
    corrupt.unlink()
    second = runner.invoke(app, ["observe", "-i", str(DEMO), "-i", str(cut), "--store", str(store), "-o", "json"])
    assert second.exit_code == 0, second.output
    again = orjson.loads(second.stdout)
    assert again["already_observed"] == summary["lines"]
    assert again["lines"] == len(DEMO.read_bytes().splitlines()) * 30 - read_from_cut
