"""The GitOps repository through the real git command line.

One work folder per run (or kept between runs with --work-dir): initialised with the
repository as `origin`, then each run reads the remote's heads (`ls-remote`), fetches the
base and flowgen's branch, checks the base out, and commits and pushes flowgen's branch
with `--force-with-lease` naming the commit it read, so that a branch someone else moved
in between is never overwritten.

A token reaches git only as an `http.<root>.extraHeader` given through the environment
of one command (GIT_CONFIG_COUNT / GIT_CONFIG_KEY_n / GIT_CONFIG_VALUE_n): not on the
command line, where other users could read it, and never in .git/config. Git's messages
pass through the Redactor before anyone sees them.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from flowgen.errors import FlowgenError
from flowgen.propose.remote import Redactor, Remote, basic_auth

# Commits flowgen makes carry this trailer (see flowgen.propose.body.commit_message).
_LOG_FORMAT = "%H%x1f%an <%ae>%x1f%B%x1e"


class GitError(FlowgenError):
    """git failed: the repository cannot be reached, read or pushed to."""


class LeaseError(GitError):
    """The branch moved on the remote since it was read (another run or a person pushed it)."""


@dataclass(frozen=True, slots=True)
class Commit:
    sha: str
    author: str
    message: str


def git_version() -> str:
    """git's version; an error that says what to install when there is no git."""
    if shutil.which("git") is None:
        raise GitError("flowgen propose needs git on the PATH: install git (2.31 or later)")
    done = subprocess.run(["git", "--version"], capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise GitError(f"git --version failed: {done.stderr.strip()}")
    return done.stdout.strip()


class Git:
    """git commands in the work folder `work`, authenticated for `remote` with `token` when given."""

    def __init__(
        self,
        work: Path,
        remote: Remote,
        *,
        token: str | None = None,
        user: str = "x-access-token",
        redactor: Redactor | None = None,
        author: tuple[str, str] = ("flowgen", "flowgen@noreply.invalid"),
        timeout: float = 600.0,
    ) -> None:
        self.work = work
        self.remote = remote
        self._token = token
        self._user = user
        self.redactor = redactor or Redactor([token] if token else [])
        self.author = author
        self._timeout = timeout

    def _environment(self) -> dict[str, str]:
        env = dict(os.environ)
        env.update({"GIT_TERMINAL_PROMPT": "0", "LC_ALL": "C", "LANGUAGE": "C"})
        env.setdefault("GIT_SSH_COMMAND", "ssh -o BatchMode=yes")
        if self._token and self.remote.http_root:
            index = int(env.get("GIT_CONFIG_COUNT", "0") or 0)
            env[f"GIT_CONFIG_KEY_{index}"] = f"http.{self.remote.http_root}.extraHeader"
            env[f"GIT_CONFIG_VALUE_{index}"] = "Authorization: " + basic_auth(self._user, self._token)
            env["GIT_CONFIG_COUNT"] = str(index + 1)
        return env

    def run(self, *args: str, stdin: str | None = None, check: bool = True) -> subprocess.CompletedProcess[str]:
        """One git command in the work folder; on failure a GitError with git's (scrubbed) message."""
        command = ["git", "-C", str(self.work), *args]
        try:
            done = subprocess.run(
                command,
                input=stdin,
                capture_output=True,
                text=True,
                env=self._environment(),
                timeout=self._timeout,
                check=False,
            )
        except subprocess.TimeoutExpired:
            raise GitError(f"git {args[0]} took longer than {self._timeout:.0f}s; check the repository") from None
        except OSError as problem:
            raise GitError(f"cannot run git: {problem.strerror}. Install git (2.31 or later)") from None
        if check and done.returncode != 0:
            said = self.redactor.scrub((done.stderr or done.stdout).strip())
            raise GitError(f"git {args[0]} failed for {self.redactor.scrub(self.remote.url)}: {said}")
        return done

    def prepare(self) -> None:
        """An empty folder becomes a repository with `origin`; a folder of an earlier run is
        reused when its `origin` is this remote."""
        if (self.work / ".git").is_dir():
            found = self.run("config", "--get", "remote.origin.url", check=False).stdout.strip()
            if found != self.remote.url:
                raise GitError(
                    f"the work folder {self.work} is a clone of {self.redactor.scrub(found) or 'nothing'}, "
                    f"not of {self.redactor.scrub(self.remote.url)}: pass another --work-dir"
                )
            return
        if self.work.exists() and any(self.work.iterdir()):
            raise GitError(f"the work folder {self.work} is not empty and not a clone: pass an empty --work-dir")
        self.work.mkdir(parents=True, exist_ok=True)
        self.run("init", "--quiet")
        self.run("remote", "add", "origin", self.remote.url)

    def heads(self, *branches: str) -> dict[str, str]:
        """The commit each of `branches` points to on the remote (absent branches are left out)."""
        refs = [f"refs/heads/{b}" for b in branches]
        found = {}
        for line in self.run("ls-remote", "origin", *refs).stdout.splitlines():
            sha, _, ref = line.partition("\t")
            if ref in refs:
                found[ref.removeprefix("refs/heads/")] = sha
        return found

    def fetch(self, branches: Sequence[str]) -> None:
        specs = [f"+refs/heads/{b}:refs/remotes/origin/{b}" for b in branches]
        self.run("fetch", "--quiet", "--no-tags", "origin", *specs)

    def checkout(self, ref: str) -> None:
        """The work tree at `ref` exactly (detached; nothing of an earlier run left)."""
        self.run("checkout", "--quiet", "--force", "--detach", ref)
        self.run("clean", "-ffdxq")

    def files(self, ref: str, path: str) -> dict[str, str]:
        """The text of every file under `path` at `ref`, by path."""
        listed = self.run("ls-tree", "-r", "-z", "--name-only", "--full-tree", ref, "--", path).stdout
        found = {}
        for name in sorted(n for n in listed.split("\0") if n):
            found[name] = self.run("show", f"{ref}:{name}").stdout
        return found

    def log(self, since: str, until: str) -> list[Commit]:
        """The commits reachable from `until` and not from `since`, merges left out (a merge of the
        base into the branch, as the forges' "update branch" makes, brings in nothing of its own)."""
        text = self.run("log", "--no-merges", f"--format={_LOG_FORMAT}", f"{since}..{until}").stdout
        commits = []
        for record in text.split("\x1e"):
            if record.strip():
                sha, author, message = record.strip("\n").split("\x1f", 2)
                commits.append(Commit(sha, author, message))
        return commits

    def commit(self, path: str, message: str) -> str:
        """Stage everything under `path` and commit it; the new commit's id."""
        self.run("add", "--all", "--", path)
        name, email = self.author
        self.run("-c", f"user.name={name}", "-c", f"user.email={email}", "commit", "--quiet", "--file=-", stdin=message)
        return self.run("rev-parse", "HEAD").stdout.strip()

    def push(self, branch: str, expected: str | None) -> None:
        """Push HEAD to `branch`, replacing it only if it still points to `expected` (None: only
        if it does not exist yet)."""
        lease = f"--force-with-lease=refs/heads/{branch}:{expected or ''}"
        done = self.run("push", "--porcelain", lease, "origin", f"HEAD:refs/heads/{branch}", check=False)
        if done.returncode == 0:
            return
        said = self.redactor.scrub("\n".join(p for p in (done.stdout.strip(), done.stderr.strip()) if p))
        if "stale info" in said:
            raise LeaseError(f"{branch} moved on {self.redactor.scrub(self.remote.url)} since flowgen read it")
        raise GitError(f"git push to {branch} of {self.redactor.scrub(self.remote.url)} failed: {said}")
