"""A real HTTP file server on 127.0.0.1 for the zoo tests (no test touches the internet).

Serves the files of a directory with ``Range`` support, the way GitHub releases, Dropbox and
download.openmmlab.com answer, plus the two calls ``huggingface_hub`` makes for one file of a
hub repository (``HEAD`` and ``GET /{repo}/resolve/{revision}/{file}``). Faults are injected per
path: ``drop[path] = n`` closes the connection after ``n`` body bytes (once per entry of the
list), ``ignore_range`` answers 200 with the whole file to a Range request. Every request is
recorded in ``requests`` so a test can assert that a cached model makes none.
"""
from __future__ import annotations

import hashlib
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import unquote, urlsplit

HF_COMMIT = "0123456789abcdef0123456789abcdef01234567"


class FileServer:
    """``with FileServer(root) as server: server.url`` -> ``http://127.0.0.1:PORT``.

    ``hf_root`` holds hub repositories as ``hf_root/ORG/NAME/FILE``."""

    def __init__(self, root: Path, hf_root: Path | None = None):
        self.root = Path(root)
        self.hf_root = Path(hf_root) if hf_root else None
        self.requests: list[tuple[str, str, str | None]] = []  # (method, path, Range header)
        self.drop: dict[str, list[int]] = {}
        self.ignore_range: set[str] = set()
        self.lock = threading.Lock()
        self._httpd = ThreadingHTTPServer(("127.0.0.1", 0), _handler(self))
        self._httpd.daemon_threads = True
        self._thread = threading.Thread(target=self._httpd.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self._httpd.server_address[1]}"

    def __enter__(self) -> FileServer:
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._httpd.shutdown()
        self._httpd.server_close()

    def paths(self, method: str = "GET") -> list[str]:
        return [p for m, p, _ in self.requests if m == method]

    def resolve(self, path: str) -> Path | None:
        """The file behind a request path (plain files, or hub ``resolve`` URLs)."""
        parts = [unquote(p) for p in path.strip("/").split("/")]
        if self.hf_root is not None and len(parts) >= 5 and parts[2] == "resolve":
            file = self.hf_root.joinpath(parts[0], parts[1], *parts[4:])
        else:
            file = self.root.joinpath(*parts)
        try:
            file.resolve().relative_to((self.hf_root if "resolve" in parts else self.root)
                                       .resolve())
        except ValueError:
            return None
        return file if file.is_file() else None


def _handler(server: FileServer):
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, *args):  # keep test output clean
            pass

        def do_HEAD(self):
            self._serve(body=False)

        def do_GET(self):
            self._serve(body=True)

        def _serve(self, body: bool):
            path = urlsplit(self.path).path
            with server.lock:
                server.requests.append((self.command, path, self.headers.get("Range")))
            file = server.resolve(path)
            if file is None:
                self.send_response(404)
                self.send_header("Content-Length", "0")
                self.end_headers()
                return
            data = file.read_bytes()
            start = 0
            rng = self.headers.get("Range")
            if rng and path not in server.ignore_range and rng.startswith("bytes="):
                start = int(rng[6:].split("-")[0])
                if start >= len(data):
                    self.send_response(416)
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                    return
                self.send_response(206)
                self.send_header("Content-Range", f"bytes {start}-{len(data) - 1}/{len(data)}")
            else:
                self.send_response(200)
            self.send_header("Content-Length", str(len(data) - start))
            self.send_header("Accept-Ranges", "bytes")
            if "resolve" in path:  # what huggingface_hub reads from a HEAD
                self.send_header("X-Repo-Commit", HF_COMMIT)
                self.send_header("ETag", f'"{hashlib.sha256(data).hexdigest()}"')
            self.end_headers()
            if not body:
                return
            payload = data[start:]
            with server.lock:
                drops = server.drop.get(path)
                cut = drops.pop(0) if drops else None
            if cut is not None:  # send part of the body, then drop the connection
                self.wfile.write(payload[:cut])
                self.wfile.flush()
                self.close_connection = True
                self.connection.shutdown(2)
                return
            self.wfile.write(payload)

    return Handler
