"""Running a server: :func:`serve` for ``vidcls serve`` (blocks until Ctrl-C / SIGTERM) and
:class:`ServerThread` (uvicorn in a background thread: tests, benchmarks, notebooks).

Both bind the listening socket themselves, so ``port=0`` gives a free port whose number is
known before the first request, and both refuse to listen beyond the loopback interface
without a token (:func:`check_exposure`): a model server open to a network should not be one
flag away from serving anyone who finds it.
"""
from __future__ import annotations

import ipaddress
import socket
import threading
import time

import uvicorn

from vidcls.serve.state import ServeConfig

__all__ = ["serve", "ServerThread", "bind_socket", "check_exposure", "is_loopback"]


def is_loopback(host: str) -> bool:
    """Whether ``host`` is only reachable from this machine (127.0.0.0/8, ::1, localhost)."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def check_exposure(host: str, *, token: str | None, insecure: bool = False) -> None:
    """A ``ValueError`` when ``host`` is reachable from other machines but no token guards it
    (``insecure=True`` accepts that on purpose)."""
    if is_loopback(host) or token is not None or insecure:
        return
    raise ValueError(f"refusing to listen on {host} without a token: anyone who can reach "
                     f"this machine could use the server; pass --token-file FILE (a secret, "
                     f"sent as 'Authorization: Bearer TOKEN'), or --insecure to allow it")


def bind_socket(host: str, port: int) -> socket.socket:
    """A listening TCP socket on ``host:port`` (``port=0``: a free port)."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((host, port))
        sock.listen(128)
    except OSError as err:
        sock.close()
        raise OSError(f"cannot listen on {host}:{port} ({err.strerror or err}); pick another "
                      f"--port or --host") from None
    sock.set_inheritable(True)
    return sock


def _uvicorn_config(app, config: ServeConfig, log_level: str) -> uvicorn.Config:
    # WebSocket messages up to twice the frame limit reach the app, which answers the ones
    # over the limit with an error (the connection stays usable); larger ones close it (1009).
    return uvicorn.Config(app, log_level=log_level, lifespan="on", server_header=False,
                          ws_max_size=2 * config.max_frame_bytes + 65536,
                          timeout_graceful_shutdown=5, access_log=log_level == "debug")


def serve(app, *, host: str = "127.0.0.1", port: int = 8000, insecure: bool = False,
          log_level: str = "info", on_listening=None) -> None:
    """Serve ``app`` (from :func:`vidcls.serve.create_app`) until interrupted.

    ``insecure``: allow a non-loopback ``host`` without a token. ``on_listening(url)`` is
    called once the socket listens (the CLI prints the URL)."""
    state = app.state.vidcls
    check_exposure(host, token=state.config.token, insecure=insecure)
    sock = bind_socket(host, port)
    try:
        bound = sock.getsockname()[1]
        if on_listening is not None:
            shown = f"[{host}]" if ":" in host else host
            on_listening(f"http://{shown}:{bound}")
        uvicorn.Server(_uvicorn_config(app, state.config, log_level)).run(sockets=[sock])
    finally:
        sock.close()


class ServerThread:
    """uvicorn serving ``app`` in a daemon thread on ``host:port`` (default: loopback, a free
    port). ``with ServerThread(app) as server: ... server.url ...``; :meth:`stop` shuts it
    down gracefully (the app's pools and threads end, its upload directory is removed)."""

    def __init__(self, app, *, host: str = "127.0.0.1", port: int = 0,
                 log_level: str = "warning"):
        self.app, self.host, self.port, self.log_level = app, host, port, log_level
        self._server: uvicorn.Server | None = None
        self._thread: threading.Thread | None = None
        self._sock: socket.socket | None = None

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    @property
    def ws_url(self) -> str:
        return f"ws://{self.host}:{self.port}"

    def start(self, timeout: float = 60.0) -> "ServerThread":
        if self._thread is not None:
            raise RuntimeError(f"the server at {self.url} is already running")
        state = self.app.state.vidcls
        check_exposure(self.host, token=state.config.token)
        self._sock = bind_socket(self.host, self.port)
        self.port = self._sock.getsockname()[1]
        self._server = uvicorn.Server(_uvicorn_config(self.app, state.config, self.log_level))
        self._thread = threading.Thread(target=self._server.run,
                                        kwargs={"sockets": [self._sock]},
                                        name="vidcls-serve", daemon=True)
        self._thread.start()
        deadline = time.monotonic() + timeout
        while not self._server.started:
            if not self._thread.is_alive():
                raise RuntimeError("the server thread ended during start-up (see its log)")
            if time.monotonic() > deadline:
                self.stop()
                raise TimeoutError(f"the server did not start within {timeout:g} s")
            time.sleep(0.01)
        return self

    def stop(self, timeout: float = 30.0) -> None:
        if self._server is not None:
            self._server.should_exit = True
        if self._thread is not None:
            self._thread.join(timeout)
            if self._thread.is_alive():
                raise TimeoutError(f"the server thread did not stop within {timeout:g} s")
        if self._sock is not None:
            self._sock.close()
        self._server = self._thread = self._sock = None

    def __enter__(self) -> "ServerThread":
        return self if self._thread is not None else self.start()

    def __exit__(self, *exc) -> None:
        self.stop()
