"""``vidcls serve``: argument parsing only; the work is in :mod:`vidcls.serve`.

Several models may be served at once, so ``--model NAME`` and ``--checkpoint [NAME=]DIR`` may
each be given several times (the one-model commands take them through
:func:`vidcls.cli._common.add_model_source`); the first is the default model of requests that
name none.
"""
from __future__ import annotations

import argparse
import contextlib
import signal
import sys
from pathlib import Path

from vidcls.cli._common import fail


class _AppendSource(argparse.Action):
    """``--model`` and ``--checkpoint`` into one ordered list of ``(kind, value)``."""

    def __call__(self, parser, namespace, values, option_string=None):
        sources = list(getattr(namespace, self.dest, None) or [])
        sources.append((self.const, values))
        setattr(namespace, self.dest, sources)


def add_model_sources(parser: argparse.ArgumentParser) -> None:
    """Repeatable ``--model NAME`` / ``--checkpoint [NAME=]DIR`` and ``--offline``."""
    parser.add_argument("--model", dest="sources", action=_AppendSource, const="model",
                        metavar="NAME", help="a published model by name (vidcls models lists "
                                             "them); repeat to serve several")
    parser.add_argument("--checkpoint", dest="sources", action=_AppendSource,
                        const="checkpoint", metavar="[NAME=]DIR",
                        help="a checkpoint directory, served as NAME (default: the folder's "
                             "name); repeat to serve several")
    parser.add_argument("--offline", action="store_true", default=None,
                        help="with --model: use the cache only (also VIDCLS_OFFLINE=1)")


def model_sources(args: argparse.Namespace) -> list[tuple[str, str]]:
    """``(name, checkpoint directory)`` of every ``--model`` / ``--checkpoint``, in order."""
    from vidcls.serve.models import model_name_for

    out = []
    for kind, value in args.sources or []:
        if kind == "model":
            from vidcls.zoo import checkpoint_dir

            out.append((value, str(checkpoint_dir(value, offline=args.offline))))
            continue
        name, sep, directory = value.partition("=")
        if not sep or not name or Path(value).exists():
            name, directory = model_name_for(value), value
        if not Path(directory).exists():
            raise FileNotFoundError(f"checkpoint {directory!r} not found")
        out.append((name, directory))
    return out


def _read_token(path: str | None) -> str | None:
    if path is None:
        return None
    try:
        token = Path(path).read_text(encoding="utf-8").strip()
    except OSError as err:
        raise FileNotFoundError(f"cannot read --token-file {path!r} ({err.strerror})") from None
    if not token:
        raise ValueError(f"--token-file {path!r} is empty; put a secret in it (e.g. "
                         f"python -c 'import secrets; print(secrets.token_urlsafe(32))')")
    return token


def cmd_serve(args: argparse.Namespace) -> int:
    try:
        from vidcls.serve import ServeConfig, ServedModel, check_exposure, create_app, serve
    except ImportError as err:
        return fail("serve", ImportError(f"vidcls serve needs the serve extra ({err.name} is "
                                         f"missing): pip install 'vidcls[serve]'"))
    if not args.sources:
        return fail("serve", ValueError("no model to serve: give --model NAME or "
                                        "--checkpoint DIR (repeat to serve several)"))
    try:
        token = _read_token(args.token_file)
        check_exposure(args.host, token=token, insecure=args.insecure)
        config = ServeConfig(max_upload_mb=args.max_upload_mb, max_batch=args.max_batch,
                             max_wait_ms=args.max_wait_ms, decode_workers=args.decode_workers,
                             stream_max_fps=args.stream_max_fps, token=token)
        models = [ServedModel.load(name, directory, device=args.device,
                                   precision=args.precision)
                  for name, directory in model_sources(args)]
        app = create_app(models, config)

        def listening(url: str) -> None:
            names = ", ".join(m.name for m in models)
            print(f"vidcls serve: {names} on {url}  (page: {url}/, API docs: {url}/docs; "
                  f"Ctrl-C stops)", file=sys.stderr, flush=True)

        with _stop_signals_as_interrupt():
            serve(app, host=args.host, port=args.port, insecure=args.insecure,
                  log_level=args.log_level, on_listening=listening)
    except KeyboardInterrupt:  # uvicorn shut down gracefully, then passed the signal on
        pass
    except (OSError, ValueError) as err:  # OSError: also a failed download or a busy port
        return fail("serve", err)
    print("vidcls serve: stopped", file=sys.stderr)
    return 0


@contextlib.contextmanager
def _stop_signals_as_interrupt():
    """SIGTERM like Ctrl-C: uvicorn handles both while it serves (a graceful shut-down) and
    raises the signal again after; here that ends the command with status 0, not a kill."""
    def interrupt(signum, frame):
        raise KeyboardInterrupt

    previous = signal.signal(signal.SIGTERM, interrupt)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def register(subparsers) -> None:
    """Add ``serve``."""
    p = subparsers.add_parser(
        "serve", description="Serve models over HTTP: POST /v1/predict (video upload), "
                             "WS /v1/stream (live frames through an online TSM), a page at /, "
                             "GET /metrics, OpenAPI at /docs. Binds 127.0.0.1 unless told "
                             "otherwise; another --host needs --token-file (or --insecure).")
    add_model_sources(p)
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=8000, help="0: any free port")
    p.add_argument("--token-file", metavar="FILE",
                   help="a secret the clients send as 'Authorization: Bearer TOKEN'")
    p.add_argument("--insecure", action="store_true",
                   help="allow a non-loopback --host without a token")
    p.add_argument("--max-upload-mb", type=float, default=200.0)
    p.add_argument("--precision", default="auto", choices=["auto", "fp32", "bf16", "fp16"],
                   help="autocast of uploaded clips (auto: bf16 on a GPU that has it, else "
                        "fp32)")
    p.add_argument("--device", default="auto", help="auto, cpu, cuda, cuda:N or mps")
    p.add_argument("--max-batch", type=int, default=8,
                   help="concurrent requests per model call (1: no batching)")
    p.add_argument("--max-wait-ms", type=float, default=10.0,
                   help="how long a batch waits for more requests")
    p.add_argument("--decode-workers", type=int, default=2, help="threads decoding uploads")
    p.add_argument("--stream-max-fps", type=float, default=30.0,
                   help="frames per second accepted per WebSocket connection")
    p.add_argument("--log-level", default="info",
                   choices=["critical", "error", "warning", "info", "debug"])
    p.set_defaults(func=cmd_serve)
