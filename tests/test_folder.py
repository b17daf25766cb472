"""The output folder of `generate -d DIR`: written whole or not at all, and never touching
what flowgen did not write (issue #13)."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest
from typer.testing import CliRunner

from flowgen.cli import app
from flowgen.errors import InputError
from flowgen.policy import folder
from flowgen.policy.folder import KUSTOMIZATION, MARK, write_policies
from flowgen.policy.model import Policy
from flowgen.policy.parsing import parse
from tests.conftest import DEMO

runner = CliRunner()


def _policy(name: str, namespace: str = "shop") -> Policy:
    text = (
        "apiVersion: cilium.io/v2\nkind: CiliumNetworkPolicy\n"
        f"metadata: {{name: {name}, namespace: {namespace}}}\n"
        f"spec: {{endpointSelector: {{matchLabels: {{app: {name}}}}}, ingress: [{{}}]}}\n"
    )
    (policy,) = parse(text, f"{name}.yaml").policies
    return policy


def _snapshot(root: Path) -> dict[str, bytes | str]:
    """Every entry under `root` by relative path: file bytes, a link's target, or "<dir>"."""
    found: dict[str, bytes | str] = {}
    for path in sorted(root.rglob("*")):
        relative = str(path.relative_to(root))
        if path.is_symlink():
            found[relative] = "-> " + os.readlink(path)
        elif path.is_dir():
            found[relative] = "<dir>"
        else:
            found[relative] = path.read_bytes()
    return found


def _siblings(parent: Path) -> list[str]:
    return sorted(p.name for p in parent.iterdir())


@pytest.fixture
def out(tmp_path: Path) -> Path:
    """A folder from an earlier run, plus what a user added: a hand-written file, a YAML file
    without the mark, a subfolder with a flowgen-looking file, and a link."""
    directory = tmp_path / "policies"
    write_policies(directory, [_policy("api"), _policy("web"), _policy("gone")])
    (directory / "README.md").write_text("hand-written\n")
    (directory / "extra.yaml").write_text("# mine\nkind: ConfigMap\n")
    (directory / "overlays").mkdir()
    (directory / "overlays" / "prod.yaml").write_text(f"{MARK}: but in a subfolder\n")
    (directory / "link.yaml").symlink_to("extra.yaml")
    return directory


def test_hand_written_files_and_subfolders_survive_and_stale_files_go(out: Path) -> None:
    before = _snapshot(out)
    result = write_policies(out, [_policy("api"), _policy("web"), _policy("new")])
    assert result == "3 written, 1 stale removed"
    after = _snapshot(out)
    assert "shop.gone.yaml" not in after and "shop.new.yaml" in after
    for name in ("README.md", "extra.yaml", "overlays", "overlays/prod.yaml", "link.yaml"):
        assert after[name] == before[name], name
    assert (out / "link.yaml").is_symlink()
    assert "  - shop.new.yaml\n" in (out / KUSTOMIZATION).read_text()
    assert _siblings(out.parent) == ["policies"]


def test_every_written_file_starts_with_the_mark(tmp_path: Path) -> None:
    write_policies(tmp_path / "p", [_policy("api")])
    for path in (tmp_path / "p").iterdir():
        assert path.read_text().startswith(MARK), path.name


def test_folder_permissions_are_kept(out: Path) -> None:
    out.chmod(0o750)
    write_policies(out, [_policy("api")])
    assert stat.S_IMODE(out.stat().st_mode) == 0o750


def test_missing_folder_and_parents_are_created(tmp_path: Path) -> None:
    target = tmp_path / "a" / "b" / "policies"
    assert write_policies(target, [_policy("api")]) == "1 written, 0 stale removed"
    assert sorted(p.name for p in target.iterdir()) == [KUSTOMIZATION, "shop.api.yaml"]


def test_a_failure_mid_write_leaves_the_old_folder_as_it_was(out: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    before = _snapshot(out)
    real = folder._write
    calls = []

    def failing(path: Path, text: str) -> None:
        calls.append(path)
        if len(calls) > 1:
            raise OSError(28, "No space left on device", str(path))
        real(path, text)

    monkeypatch.setattr(folder, "_write", failing)
    with pytest.raises(InputError) as raised:
        write_policies(out, [_policy("api"), _policy("web"), _policy("new")])
    message = str(raised.value)
    assert f"cannot write policies to {out}: No space left on device" in message
    assert "-d/--output-dir" in message and "--output DIR" not in message
    assert len(calls) == 2
    assert _snapshot(out) == before
    assert _siblings(out.parent) == ["policies"]


def test_an_interrupt_mid_write_leaves_the_old_folder_too(out: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    before = _snapshot(out)

    def interrupted(path: Path, text: str) -> None:
        raise KeyboardInterrupt

    monkeypatch.setattr(folder, "_write", interrupted)
    with pytest.raises(KeyboardInterrupt):
        write_policies(out, [_policy("api")])
    assert _snapshot(out) == before
    assert _siblings(out.parent) == ["policies"]


def test_a_failed_swap_puts_the_old_folder_back(out: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    before = _snapshot(out)
    real = Path.rename

    def rename(self: Path, target: Path) -> Path:
        if self.name.endswith(".flowgen-new"):
            raise OSError(16, "Device or resource busy", str(self))
        return real(self, target)

    monkeypatch.setattr(Path, "rename", rename)
    with pytest.raises(InputError, match="Device or resource busy"):
        write_policies(out, [_policy("api")])
    assert _snapshot(out) == before
    assert _siblings(out.parent) == ["policies"]


def test_leftovers_of_a_crashed_run_are_cleaned_up(out: Path) -> None:
    """A killed run may leave a half-built new folder and a backup of the old one."""
    half = out.parent / ".policies.flowgen-new"
    half.mkdir()
    (half / "shop.api.yaml").write_text(f"{MARK}\nhalf")
    backup = out.parent / ".policies.flowgen-old"
    backup.mkdir()
    (backup / "shop.old.yaml").write_text(f"{MARK}\n")
    assert write_policies(out, [_policy("api"), _policy("web")]) == "2 written, 1 stale removed"
    assert _siblings(out.parent) == ["policies"]
    assert (out / "README.md").exists() and not (out / "shop.api.yaml").read_text().endswith("half")


def test_a_crash_between_the_two_renames_restores_the_old_folder(out: Path) -> None:
    """Killed after old -> backup and before new -> DIR: the backup is the old folder."""
    before = _snapshot(out)
    out.rename(out.parent / ".policies.flowgen-old")
    (out.parent / ".policies.flowgen-new").mkdir()
    write_policies(out, [_policy("api"), _policy("web"), _policy("gone")])
    assert _snapshot(out) == before
    assert _siblings(out.parent) == ["policies"]


def test_a_hand_written_file_with_a_generated_name_is_never_replaced(out: Path) -> None:
    (out / "shop.api.yaml").write_text("# my own version\n")
    before = _snapshot(out)
    with pytest.raises(InputError, match=r"shop\.api\.yaml there was not written by flowgen"):
        write_policies(out, [_policy("api")])
    assert _snapshot(out) == before
    assert _siblings(out.parent) == ["policies"]


def test_a_file_in_place_of_the_folder_is_an_error(tmp_path: Path) -> None:
    target = tmp_path / "policies"
    target.write_text("not a folder")
    with pytest.raises(InputError, match="it is a file, not a folder"):
        write_policies(target, [_policy("api")])
    assert target.read_text() == "not a folder"


def test_a_link_to_the_folder_stays_a_link(out: Path) -> None:
    link = out.parent / "current"
    link.symlink_to(out.name)
    write_policies(link, [_policy("api")])
    assert link.is_symlink() and (link / "shop.api.yaml").exists() and (link / "README.md").exists()
    assert _siblings(out.parent) == ["current", "policies"]


def test_generate_into_the_current_folder(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """`-d .` swaps the folder flowgen runs in; later relative paths (--report) still work."""
    here = tmp_path / "policies"
    here.mkdir()
    (here / "README.md").write_text("mine\n")
    monkeypatch.chdir(here)
    result = runner.invoke(app, ["generate", "-n", "shop", "-i", str(DEMO), "-d", ".", "--report", "report.md"])
    assert result.exit_code == 0, result.output
    assert (here / "README.md").read_text() == "mine\n"
    assert (here / "report.md").exists() and (here / KUSTOMIZATION).exists()


def test_every_file_is_flushed_before_the_folder_is_renamed(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """One syncfs for the whole folder where Linux has it; else one fsync per file. Either way
    before the rename that puts the folder in place (docs/performance.md: per-file fsync cost
    minutes at 100,000 policies)."""
    events: list[str] = []
    real_rename = Path.rename

    def rename(self: Path, target: Path) -> Path:
        events.append("rename")
        return real_rename(self, target)

    def syncfs(descriptor: int) -> int:
        events.append("syncfs")
        return 0

    monkeypatch.setattr(Path, "rename", rename)
    monkeypatch.setattr(folder, "_syncfs", syncfs)
    write_policies(tmp_path / "one", [_policy("api"), _policy("web")])
    assert events == ["syncfs", "rename"]

    events.clear()
    real_fsync = os.fsync

    def fsync(descriptor: int) -> None:
        events.append("fsync")
        real_fsync(descriptor)

    monkeypatch.setattr(folder, "_syncfs", None)
    monkeypatch.setattr(folder.os, "fsync", fsync)
    write_policies(tmp_path / "two", [_policy("api"), _policy("web")])
    # Two policies and the kustomization first; the folders' own entries around the rename.
    assert events[:3] == ["fsync"] * 3
    assert events.index("rename") > 3
    assert sorted(p.name for p in (tmp_path / "two").iterdir()) == [
        KUSTOMIZATION,
        "shop.api.yaml",
        "shop.web.yaml",
    ]


def test_syncfs_is_found_on_linux() -> None:
    if os.uname().sysname != "Linux":
        pytest.skip("syncfs is Linux's")
    assert folder._syncfs is not None
