"""A tiny server on 127.0.0.1 speaking the Hugging Face Hub's HTTP file API, for tests.

Downloads: HEAD/GET /{repo_id}/resolve/{revision}/{filename} with the X-Repo-Commit / ETag / Content-Length
headers huggingface_hub needs. Uploads: POST /api/repos/create, /api/validate-yaml,
/api/models/{repo_id}/preupload/{rev} (every file "regular") and /api/models/{repo_id}/commit/{rev} (NDJSON).
``truncate`` lists filenames whose GET body is cut short (a broken transfer).
"""
from __future__ import annotations

import base64
import hashlib
import time
import json
import re
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


class HubState:
    def __init__(self):
        self.repos: dict[str, dict[str, bytes]] = {}
        self.truncate: set[str] = set()
        self.stall: float = 0.0  # seconds every request hangs before answering (a server that stops answering)
        self.fail: dict[str, int] = {}  # filename -> HTTP status every request for it gets (e.g. 500)
        self.trickle: set[str] = set()  # filenames whose GET body comes one byte every 0.2 s (alive, never done)
        self.requests: list[str] = []

    def commit(self, repo_id: str) -> str:
        files = self.repos.get(repo_id, {})
        digest = hashlib.sha1(b"".join(k.encode() + hashlib.sha256(v).digest() for k, v in sorted(files.items())))
        return digest.hexdigest()


def make_handler(state: HubState):
    resolve = re.compile(r"^/(?P<repo>[^/]+/[^/]+)/resolve/(?P<rev>[^/]+)/(?P<path>.+)$")
    api = re.compile(r"^/api/models/(?P<repo>[^/]+/[^/]+)/(?P<op>preupload|commit)/(?P<rev>[^/?]+)")

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, *args):  # keep pytest output clean
            pass

        def _json(self, code: int, payload: dict):
            body = json.dumps(payload).encode()
            self.send_response(code)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def _file(self, head: bool):
            state.requests.append(f"{self.command} {self.path}")
            time.sleep(state.stall)
            m = resolve.match(self.path.split("?")[0])
            if m and m["path"] in state.fail:
                self.send_response(state.fail[m["path"]])
                self.send_header("Content-Length", "0")
                self.end_headers()
                return
            files = state.repos.get(m["repo"]) if m else None
            if not m or files is None or m["path"] not in files:
                self.send_response(404)
                self.send_header("X-Error-Code", "EntryNotFound" if files is not None else "RepoNotFound")
                self.send_header("Content-Length", "0")
                self.end_headers()
                return
            data = files[m["path"]]
            self.send_response(200)
            self.send_header("X-Repo-Commit", state.commit(m["repo"]))
            self.send_header("ETag", f'"{hashlib.sha256(data).hexdigest()}"')
            self.send_header("Content-Length", str(len(data)))
            self.send_header("Content-Type", "application/octet-stream")
            self.end_headers()
            if not head and m["path"] in state.trickle:
                try:
                    for i in range(len(data)):
                        self.wfile.write(data[i:i + 1])
                        self.wfile.flush()
                        time.sleep(0.2)
                except (BrokenPipeError, ConnectionResetError):  # the client gave up: what the test wants
                    self.close_connection = True
                return
            if not head:
                self.wfile.write(data[: len(data) // 2] if m["path"] in state.truncate else data)
                if m["path"] in state.truncate:
                    self.close_connection = True

        def do_HEAD(self):
            self._file(head=True)

        def do_GET(self):
            self._file(head=False)

        def do_POST(self):
            state.requests.append(f"POST {self.path}")
            time.sleep(state.stall)
            body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
            path = self.path.split("?")[0]
            if path == "/api/repos/create":
                payload = json.loads(body)
                repo_id = f"{payload['organization']}/{payload['name']}" if payload.get("organization") else payload["name"]
                state.repos.setdefault(repo_id, {})
                return self._json(200, {"url": f"http://{self.headers['Host']}/{repo_id}", "name": repo_id})
            if path == "/api/validate-yaml":
                return self._json(200, {"errors": [], "warnings": []})
            m = api.match(path)
            if m and m["op"] == "preupload":
                files = json.loads(body)["files"]
                return self._json(200, {"files": [{"path": f["path"], "uploadMode": "regular", "shouldIgnore": False}
                                                  for f in files]})
            if m and m["op"] == "commit":
                repo = state.repos.setdefault(m["repo"], {})
                for line in body.decode().splitlines():
                    item = json.loads(line)
                    if item["key"] == "file":
                        repo[item["value"]["path"]] = base64.b64decode(item["value"]["content"])
                oid = state.commit(m["repo"])
                return self._json(200, {"commitUrl": f"http://{self.headers['Host']}/{m['repo']}/commit/{oid}",
                                        "commitOid": oid, "pullRequestUrl": None})
            self._json(404, {"error": f"not implemented: {path}"})

    return Handler


def serve(sock_port: int) -> tuple[ThreadingHTTPServer, HubState]:
    state = HubState()
    server = ThreadingHTTPServer(("127.0.0.1", sock_port), make_handler(state))
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server, state
