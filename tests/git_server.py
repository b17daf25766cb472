"""A real git remote on loopback for the propose tests: bare repositories served over git's smart
HTTP protocol by `git http-backend` (the CGI program git ships) behind a small threaded HTTP
server on 127.0.0.1, asking for a token the way GitHub does (HTTP Basic, any user name).

Every request's Authorization header is recorded, so tests can check what git sent.
"""

from __future__ import annotations

import base64
import os
import subprocess
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path


class GitServer:
    """Serves the bare repositories under `root` at http://127.0.0.1:PORT/git/<name>.git."""

    def __init__(self, root: Path, token: str | None) -> None:
        self.root = root
        self.token = token
        self.authorizations: list[str] = []
        self.refused = 0
        server = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, format: str, *args: object) -> None:
                pass

            def do_GET(self) -> None:
                server.handle(self)

            def do_POST(self) -> None:
                server.handle(self)

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.port = self.httpd.server_address[1]
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)

    def url(self, name: str) -> str:
        return f"http://127.0.0.1:{self.port}/git/{name}.git"

    def _authorized(self, header: str) -> bool:
        if self.token is None:
            return True
        if not header.startswith("Basic "):
            return False
        _user, _, password = base64.b64decode(header[6:]).decode().partition(":")
        return password == self.token

    def handle(self, request: BaseHTTPRequestHandler) -> None:
        header = request.headers.get("Authorization", "")
        self.authorizations.append(header)
        body = _body(request)
        if not self._authorized(header):
            self.refused += 1
            request.send_response(401)
            request.send_header("WWW-Authenticate", 'Basic realm="git"')
            request.send_header("Content-Length", "0")
            request.end_headers()
            return
        path, _, query = request.path.partition("?")
        env = {
            "PATH": os.environ["PATH"],
            "GIT_PROJECT_ROOT": str(self.root),
            "GIT_HTTP_EXPORT_ALL": "1",
            "PATH_INFO": path.removeprefix("/git"),
            "QUERY_STRING": query,
            "REQUEST_METHOD": request.command,
            "CONTENT_TYPE": request.headers.get("Content-Type", ""),
            "CONTENT_LENGTH": str(len(body)),
            "HTTP_CONTENT_ENCODING": request.headers.get("Content-Encoding", ""),
            "GIT_PROTOCOL": request.headers.get("Git-Protocol", ""),
            "REMOTE_USER": "flowgen",
            "REMOTE_ADDR": "127.0.0.1",
        }
        done = subprocess.run(["git", "http-backend"], input=body, capture_output=True, env=env, check=False)
        head, _, payload = done.stdout.partition(b"\r\n\r\n")
        if not payload and b"\n\n" in head:
            head, _, payload = done.stdout.partition(b"\n\n")
        status, headers = 200, []
        for line in head.decode("latin-1").splitlines():
            name, _, value = line.partition(":")
            if name.lower() == "status":
                status = int(value.strip().split()[0])
            elif name:
                headers.append((name, value.strip()))
        request.send_response(status)
        for name, value in headers:
            request.send_header(name, value)
        request.send_header("Content-Length", str(len(payload)))
        request.end_headers()
        request.wfile.write(payload)

    def start(self) -> GitServer:
        self.thread.start()
        return self

    def stop(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


def _body(request: BaseHTTPRequestHandler) -> bytes:
    """The request body, plain or chunked (git streams large pushes chunked)."""
    if request.headers.get("Transfer-Encoding", "").lower() == "chunked":
        chunks = []
        while True:
            size = int(request.rfile.readline().strip().split(b";")[0], 16)
            if size == 0:
                request.rfile.readline()
                return b"".join(chunks)
            chunks.append(request.rfile.read(size))
            request.rfile.readline()
    length = int(request.headers.get("Content-Length") or 0)
    return request.rfile.read(length) if length else b""


@contextmanager
def serving(root: Path, token: str | None) -> Iterator[GitServer]:
    server = GitServer(root, token).start()
    try:
        yield server
    finally:
        server.stop()


def git(*args: str, cwd: Path | None = None) -> str:
    """A git command for the tests' own setup (a fixed identity, no global configuration)."""
    env = {
        **os.environ,
        "GIT_CONFIG_GLOBAL": os.devnull,
        "GIT_CONFIG_NOSYSTEM": "1",
        "GIT_AUTHOR_NAME": "Dev",
        "GIT_AUTHOR_EMAIL": "dev@example.test",
        "GIT_COMMITTER_NAME": "Dev",
        "GIT_COMMITTER_EMAIL": "dev@example.test",
    }
    done = subprocess.run(["git", *args], cwd=cwd, capture_output=True, text=True, env=env, check=False)
    assert done.returncode == 0, f"git {' '.join(args)}: {done.stderr}"
    return done.stdout


def bare_repository(root: Path, name: str, files: dict[str, str] | None = None) -> Path:
    """A bare repository `root/name.git` whose main branch holds `files` (a README by default)."""
    bare = root / f"{name}.git"
    git("init", "--quiet", "--bare", "--initial-branch=main", str(bare))
    seed = root / f"{name}-seed"
    git("clone", "--quiet", str(bare), str(seed))
    for path, text in (files or {"README.md": "# gitops\n"}).items():
        (seed / path).parent.mkdir(parents=True, exist_ok=True)
        (seed / path).write_text(text)
    git("checkout", "--quiet", "-B", "main", cwd=seed)
    git("add", "--all", cwd=seed)
    git("commit", "--quiet", "-m", "initial", cwd=seed)
    git("push", "--quiet", "origin", "main", cwd=seed)
    return bare
