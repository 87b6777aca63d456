"""A stand-in for the GitHub API's ``GET /user``: a real HTTP server on 127.0.0.1.

    with GitHubStandin({"tok-alice": "alice"}) as gh:
        gh.url                    # http://127.0.0.1:<port>, the --github-api-url
        gh.add("tok-bob", "bob")  # tokens can be added and revoked while it runs
        gh.revoke("tok-alice")
        gh.requests               # how many /user requests it answered
        gh.delay = 1.0            # seconds it takes to answer (a slow GitHub)

Answers like GitHub: 200 ``{"login": ..., "id": ...}`` for a known token sent as
``Authorization: token X`` or ``Bearer X``; 401 ``{"message": "Bad credentials"}`` otherwise.
"""
from __future__ import annotations

import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


class GitHubStandin:
    def __init__(self, tokens: dict[str, str] | None = None) -> None:
        self._tokens: dict[str, str] = dict(tokens or {})
        self._lock = threading.Lock()
        self.requests = 0
        self.delay = 0.0
        standin = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args) -> None:  # quiet
                pass

            def do_GET(self) -> None:
                if self.path.split("?")[0] != "/user":
                    return self._send(404, {"message": "Not Found"})
                if standin.delay:
                    time.sleep(standin.delay)
                auth = self.headers.get("Authorization", "")
                scheme, _, token = auth.partition(" ")
                with standin._lock:
                    standin.requests += 1
                    login = standin._tokens.get(token.strip()) if scheme.lower() in ("token", "bearer") else None
                if login is None:
                    return self._send(401, {"message": "Bad credentials",
                                            "documentation_url": "https://docs.github.com/rest"})
                self._send(200, {"login": login, "id": abs(hash(login)) % 10**8, "type": "User"})

            def _send(self, status: int, body: dict) -> None:
                data = json.dumps(body).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json; charset=utf-8")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True, name="github-standin")
        host, port = self._server.server_address[:2]
        self.url = f"http://{host}:{port}"

    def add(self, token: str, login: str) -> None:
        with self._lock:
            self._tokens[token] = login

    def revoke(self, token: str) -> None:
        with self._lock:
            self._tokens.pop(token, None)

    def reset_count(self) -> None:
        with self._lock:
            self.requests = 0

    def start(self) -> "GitHubStandin":
        self._thread.start()
        return self

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()

    def __enter__(self) -> "GitHubStandin":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()
