"""A small stand-in for the Hugging Face Hub's HTTP API, for tests (127.0.0.1 only).

It speaks the part of the API that ``huggingface_hub``'s real client calls to create a repo,
commit (preupload + ndjson commit, with deletions), create a branch, open a pull request,
list a revision's files, and resolve files for ``hf_hub_download``. Files live in memory, as
immutable snapshots per commit, with branches (``main``, ``refs/pr/N``) pointing at commits.
Only "regular" (inline, base64) uploads are offered, so no LFS or Xet storage is needed.

Usage::

    with HubServer() as hub:          # listens on 127.0.0.1, a free port
        hub.url                       # e.g. http://127.0.0.1:41235
        hub.files("me/loss", "main")  # {path: bytes} of a revision
        hub.requests                  # [(method, path), ...] as received

Every error answer carries the ``X-Error-Code`` header the real Hub sends
(``RepoNotFound``, ``RevisionNotFound``, ``EntryNotFound``), which the client maps to its
exception types.
"""

from __future__ import annotations

import base64
import hashlib
import json
import threading
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, unquote, urlsplit

import yaml


def git_blob_sha1(data: bytes) -> str:
    """The git object id of a file's content (what the Hub reports as a file's ``oid``)."""
    return hashlib.sha1(b"blob %d\0" % len(data) + data).hexdigest()


@dataclass
class Repo:
    private: bool
    commits: dict[str, dict[str, bytes]] = field(default_factory=dict)
    refs: dict[str, str] = field(default_factory=dict)
    pull_requests: int = 0


class HubServer:
    """A thread serving the stand-in Hub API on 127.0.0.1 (see the module docstring)."""

    def __init__(self) -> None:
        self.repos: dict[str, Repo] = {}
        self.requests: list[tuple[str, str]] = []
        self.tokens: list[str | None] = []
        self._lock = threading.Lock()
        self._counter = 0
        server = self

        class Handler(_Handler):
            hub = server

        self._httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._httpd.daemon_threads = True
        self._thread = threading.Thread(target=self._httpd.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        host, port = self._httpd.server_address[:2]
        return f"http://{host}:{port}"

    def __enter__(self) -> HubServer:
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._httpd.shutdown()
        self._httpd.server_close()
        self._thread.join(timeout=5)

    # ------------------------------------------------------------------ state helpers

    def files(self, repo_id: str, revision: str = "main") -> dict[str, bytes]:
        """The files of a repo at a branch or commit."""
        repo = self.repos[repo_id]
        return dict(repo.commits[repo.refs.get(revision, revision)])

    def _new_commit(self, repo: Repo, files: dict[str, bytes]) -> str:
        self._counter += 1
        digest = hashlib.sha1(f"{self._counter}".encode())
        for path in sorted(files):
            digest.update(path.encode() + b"\0" + files[path])
        sha = digest.hexdigest()
        repo.commits[sha] = dict(files)
        return sha

    def _resolve(self, repo: Repo, revision: str) -> str | None:
        if revision in repo.refs:
            return repo.refs[revision]
        return revision if revision in repo.commits else None


class _Handler(BaseHTTPRequestHandler):
    hub: HubServer

    def log_message(self, format, *args) -> None:  # keep test output quiet
        pass

    # ------------------------------------------------------------------ plumbing

    def _send(self, status: int, body: bytes = b"", headers: dict[str, str] | None = None):
        self.send_response(status)
        for key, value in (headers or {}).items():
            self.send_header(key, value)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def _json(self, status: int, payload, headers: dict[str, str] | None = None) -> None:
        self._send(
            status,
            json.dumps(payload).encode(),
            {"Content-Type": "application/json", **(headers or {})},
        )

    def _error(self, status: int, code: str | None, message: str, **headers: str) -> None:
        extra = {"X-Error-Message": message, **headers}
        if code is not None:
            extra["X-Error-Code"] = code
        self._json(status, {"error": message}, extra)

    def _body(self) -> bytes:
        return self.rfile.read(int(self.headers.get("Content-Length") or 0))

    def _route(self) -> None:
        split = urlsplit(self.path)
        query = {k: v[-1] for k, v in parse_qs(split.query).items()}
        parts = split.path.strip("/").split("/")  # still quoted: a revision may hold '/'
        hub = self.hub
        with hub._lock:
            hub.requests.append((self.command, unquote(split.path)))
            hub.tokens.append(self.headers.get("Authorization"))
            if parts[:3] == ["api", "repos", "create"] and self.command == "POST":
                return self._create_repo(json.loads(self._body()))
            if parts[:2] == ["api", "validate-yaml"] and self.command == "POST":
                return self._validate_yaml(json.loads(self._body()))
            if parts[:2] == ["api", "models"] and len(parts) >= 4:
                repo_id = f"{unquote(parts[2])}/{unquote(parts[3])}"
                repo = hub.repos.get(repo_id)
                if repo is None:
                    return self._error(404, "RepoNotFound", f"Repository {repo_id} not found")
                action = parts[4] if len(parts) > 4 else "info"
                revision = unquote(parts[5]) if len(parts) > 5 else "main"
                handler = {
                    ("POST", "preupload"): self._preupload,
                    ("POST", "commit"): self._commit,
                    ("POST", "branch"): self._create_branch,
                    ("GET", "tree"): self._tree,
                    ("GET", "revision"): self._info,
                    ("GET", "info"): self._info,
                }.get((self.command, action))
                if handler is not None:
                    return handler(repo_id, repo, revision, query)
            if len(parts) >= 5 and parts[2] == "resolve" and self.command in ("GET", "HEAD"):
                repo_id = f"{unquote(parts[0])}/{unquote(parts[1])}"
                return self._resolve_file(repo_id, unquote(parts[3]), unquote("/".join(parts[4:])))
            return self._error(
                404, None, f"the stand-in Hub has no route {self.command} {self.path}"
            )

    do_GET = do_HEAD = do_POST = _route

    # ------------------------------------------------------------------ endpoints

    def _create_repo(self, payload: dict) -> None:
        repo_id = f"{payload['organization']}/{payload['name']}"
        if repo_id in self.hub.repos:  # the Hub names the existing repo's url too
            message = "You already created this model repo"
            return self._json(
                409,
                {"error": message, "url": f"{self.hub.url}/{repo_id}"},
                {"X-Error-Message": message},
            )
        repo = Repo(private=payload.get("visibility") == "private" or bool(payload.get("private")))
        self.hub.repos[repo_id] = repo
        # Like the Hub, a new repo starts with one commit holding .gitattributes.
        repo.refs["main"] = self.hub._new_commit(
            repo, {".gitattributes": b"*.safetensors filter=lfs\n"}
        )
        self._json(200, {"url": f"{self.hub.url}/{repo_id}", "name": repo_id})

    def _validate_yaml(self, payload: dict) -> None:
        content = payload.get("content", "")
        if content.startswith("---\n"):
            front = content.split("---\n")[1]
            try:
                if not isinstance(yaml.safe_load(front) or {}, dict):
                    raise yaml.YAMLError("metadata is not a mapping")
            except yaml.YAMLError as err:
                return self._json(400, {"errors": [{"message": str(err)}], "warnings": []})
        self._json(200, {"errors": [], "warnings": []})

    def _preupload(self, repo_id: str, repo: Repo, revision: str, query: dict) -> None:
        sha = self.hub._resolve(repo, revision)
        if sha is None:
            return self._error(404, "RevisionNotFound", f"Invalid rev id: {revision}")
        current = repo.commits[sha]
        files = json.loads(self._body())["files"]
        self._json(
            200,
            {
                "files": [
                    {
                        "path": f["path"],
                        "uploadMode": "regular",
                        "shouldIgnore": False,
                        "oid": git_blob_sha1(current[f["path"]]) if f["path"] in current else None,
                    }
                    for f in files
                ]
            },
        )

    def _commit(self, repo_id: str, repo: Repo, revision: str, query: dict) -> None:
        base = self.hub._resolve(repo, revision)
        if base is None or (revision not in repo.refs and query.get("create_pr") != "1"):
            return self._error(404, "RevisionNotFound", f"Invalid rev id: {revision}")
        files = dict(repo.commits[base])
        lines = [json.loads(line) for line in self._body().splitlines() if line.strip()]
        if not lines or lines[0].get("key") != "header":
            return self._error(400, None, "the commit payload must start with a header")
        for line in lines[1:]:
            key, value = line["key"], line["value"]
            path = value["path"]
            if key == "file":
                files[path] = base64.b64decode(value["content"])
            elif key == "deletedFile":
                if path not in files:
                    return self._error(
                        404, "EntryNotFound", f"A file with this name doesn't exist: {path}"
                    )
                del files[path]
            elif key == "deletedFolder":
                prefix = path.rstrip("/") + "/"
                files = {p: c for p, c in files.items() if not p.startswith(prefix)}
            else:
                return self._error(400, None, f"the stand-in Hub takes no {key!r} operations")
        sha = self.hub._new_commit(repo, files)
        response = {"commitUrl": f"{self.hub.url}/{repo_id}/commit/{sha}", "commitOid": sha}
        if query.get("create_pr") == "1":
            repo.pull_requests += 1
            repo.refs[f"refs/pr/{repo.pull_requests}"] = sha
            response["pullRequestUrl"] = (
                f"{self.hub.url}/{repo_id}/discussions/{repo.pull_requests}"
            )
        else:
            repo.refs[revision] = sha
            response["pullRequestUrl"] = None
        self._json(200, response)

    def _create_branch(self, repo_id: str, repo: Repo, branch: str, query: dict) -> None:
        payload = json.loads(self._body() or b"{}")
        if branch in repo.refs:
            return self._error(409, None, f"Reference {branch} already exists")
        start = self.hub._resolve(repo, payload.get("startingPoint", "main"))
        if start is None:
            return self._error(404, "RevisionNotFound", "Invalid starting point")
        repo.refs[branch] = start
        self._json(200, {})

    def _tree(self, repo_id: str, repo: Repo, revision: str, query: dict) -> None:
        sha = self.hub._resolve(repo, revision)
        if sha is None:
            return self._error(404, "RevisionNotFound", f"Invalid rev id: {revision}")
        files = repo.commits[sha]
        self._json(
            200,
            [
                {"type": "file", "path": p, "size": len(c), "oid": git_blob_sha1(c)}
                for p, c in sorted(files.items())
            ],
        )

    def _info(self, repo_id: str, repo: Repo, revision: str, query: dict) -> None:
        sha = self.hub._resolve(repo, revision)
        if sha is None:
            return self._error(404, "RevisionNotFound", f"Invalid rev id: {revision}")
        self._json(
            200,
            {
                "id": repo_id,
                "sha": sha,
                "private": repo.private,
                "siblings": [{"rfilename": p} for p in sorted(repo.commits[sha])],
            },
        )

    def _resolve_file(self, repo_id: str, revision: str, path: str) -> None:
        repo = self.hub.repos.get(repo_id)
        if repo is None:
            return self._error(404, "RepoNotFound", f"Repository {repo_id} not found")
        sha = self.hub._resolve(repo, revision)
        if sha is None:
            return self._error(404, "RevisionNotFound", f"Invalid rev id: {revision}")
        files = repo.commits[sha]
        if path not in files:
            return self._error(
                404,
                "EntryNotFound",
                f"{path} does not exist at {revision}",
                **{"X-Repo-Commit": sha},
            )
        data = files[path]
        self._send(
            200,
            data,
            {
                "X-Repo-Commit": sha,
                "ETag": f'"{git_blob_sha1(data)}"',
                "Content-Type": "application/octet-stream",
            },
        )
