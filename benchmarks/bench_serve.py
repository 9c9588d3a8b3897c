"""``vidcls serve`` under load, on loopback: requests/s, latency percentiles, errors.

1. ``POST /v1/predict`` with 1, 4 and 16 concurrent clients for ``--seconds`` each, dynamic
   batching on (``--max-batch``, 10 ms wait) and off (max batch 1): requests/s, p50 / p95 / p99
   latency, errors (must be 0). Ratio: batching on / off requests/s at each concurrency.
2. ``WS /v1/stream``: one connection sending JPEG frames as fast as answers come back: frames/s
   and per-frame round trip against ``StreamPredictor.step`` alone on the same decoded frames
   (the added latency of the server: JPEG decode, JSON, the socket).

The model is a TSM ResNet-18 (online, uni-directional shift) at ``--frames`` x ``--size``
with random weights (speed does not depend on them). The header gives the CPU capability and
the matmul peak measured in the same run.

    python benchmarks/bench_serve.py --seconds 10
"""
from __future__ import annotations

import argparse
import io
import statistics
import tempfile
import threading
import time
from pathlib import Path

import httpx
import numpy as np
import torch
from PIL import Image

from vidcls.data.writer import write_video
from vidcls.engine.checkpoint import save_model_checkpoint
from vidcls.inference.stream import StreamPredictor
from vidcls.models import create_model
from vidcls.repro.timing import machine_line
from vidcls.serve import ServeConfig, ServedModel, ServerThread, create_app


def make_checkpoint(root: Path, frames: int, size: int) -> Path:
    torch.manual_seed(0)
    model = create_model("tsm_resnet18", num_classes=10, num_frames=frames,
                         shift_mode="unidirectional").eval()
    model.preprocessing = model.preprocessing.replace(input_size=size, resize=size)
    return save_model_checkpoint(root / "ckpt", model, classes=[f"c{i}" for i in range(10)])


def percentile(values: list[float], q: float) -> float:
    values = sorted(values)
    return values[min(len(values) - 1, int(round(q / 100 * (len(values) - 1))))]


def load(url: str, video: bytes, clients: int, seconds: float) -> dict:
    """``clients`` threads posting ``video`` for ``seconds``: latencies and errors."""
    latencies: list[float] = []
    errors = [0]
    lock = threading.Lock()
    stop = time.perf_counter() + seconds

    def client():
        with httpx.Client(timeout=120) as http:
            while time.perf_counter() < stop:
                t = time.perf_counter()
                r = http.post(f"{url}/v1/predict", files={"file": ("v.mp4", video)})
                with lock:
                    if r.status_code == 200:
                        latencies.append(time.perf_counter() - t)
                    else:
                        errors[0] += 1

    start = time.perf_counter()
    threads = [threading.Thread(target=client) for _ in range(clients)]
    for th in threads:
        th.start()
    for th in threads:
        th.join()
    wall = time.perf_counter() - start
    return {"rps": len(latencies) / wall, "p50": percentile(latencies, 50) * 1e3,
            "p95": percentile(latencies, 95) * 1e3, "p99": percentile(latencies, 99) * 1e3,
            "errors": errors[0], "n": len(latencies)}


def stream(ws_url: str, ckpt: Path, frames: list[np.ndarray]) -> dict:
    from websockets.sync.client import connect

    jpegs = []
    for f in frames:
        buf = io.BytesIO()
        Image.fromarray(f).save(buf, format="JPEG", quality=90)
        jpegs.append(buf.getvalue())
    direct = StreamPredictor(ckpt, precision="fp32")
    t_direct = []
    for f in frames:
        t = time.perf_counter()
        direct.step(f)
        t_direct.append(time.perf_counter() - t)
    t_ws = []
    with connect(f"{ws_url}/v1/stream?model=m", max_size=2**24) as ws:
        start = time.perf_counter()
        for jpeg in jpegs:
            t = time.perf_counter()
            ws.send(jpeg)
            ws.recv()
            t_ws.append(time.perf_counter() - t)
        wall = time.perf_counter() - start
    return {"fps": len(jpegs) / wall, "ws_ms": statistics.median(t_ws) * 1e3,
            "step_ms": statistics.median(t_direct) * 1e3}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--seconds", type=float, default=10.0, help="per load configuration")
    ap.add_argument("--frames", type=int, default=8)
    ap.add_argument("--size", type=int, default=112)
    ap.add_argument("--max-batch", type=int, default=8)
    ap.add_argument("--stream-frames", type=int, default=60)
    args = ap.parse_args()
    print(machine_line())
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        ckpt = make_checkpoint(root, args.frames, args.size)
        rng = np.random.default_rng(0)
        clip = rng.integers(0, 255, (16, 120, 160, 3), dtype=np.uint8)
        write_video(root / "v.mp4", clip, fps=25)
        video = (root / "v.mp4").read_bytes()
        print(f"model: TSM ResNet-18 online, {args.frames} x {args.size}; upload "
              f"{len(video) / 1024:.0f} KiB (16 frames 160x120); {args.seconds:.0f} s per row")
        print(f"{'clients':>8}{'batching':>10}{'req/s':>8}{'p50 ms':>9}{'p95 ms':>9}"
              f"{'p99 ms':>9}{'errors':>8}{'on/off':>8}")
        for clients in (1, 4, 16):
            rows = {}
            for batching in (True, False):
                config = ServeConfig(max_batch=args.max_batch if batching else 1,
                                     max_wait_ms=10.0, stream_max_fps=1000.0)
                app = create_app([ServedModel.load("m", ckpt, device="cpu", precision="fp32")],
                                 config)
                with ServerThread(app) as server:
                    load(server.url, video, 1, 1.0)  # warm-up
                    rows[batching] = load(server.url, video, clients, args.seconds)
            for batching in (True, False):
                r = rows[batching]
                ratio = (f"{rows[True]['rps'] / rows[False]['rps']:.2f}x"
                         if batching and rows[False]["rps"] else "")
                print(f"{clients:>8}{'on' if batching else 'off':>10}{r['rps']:>8.2f}"
                      f"{r['p50']:>9.0f}{r['p95']:>9.0f}{r['p99']:>9.0f}{r['errors']:>8}"
                      f"{ratio:>8}")
        app = create_app([ServedModel.load("m", ckpt, device="cpu", precision="fp32")],
                         ServeConfig(stream_max_fps=1000.0))
        frames = [rng.integers(0, 255, (240, 320, 3), dtype=np.uint8)
                  for _ in range(args.stream_frames)]
        with ServerThread(app) as server:
            s = stream(server.ws_url, ckpt, frames)
        print(f"stream: {s['fps']:.1f} frames/s on one connection; per frame {s['ws_ms']:.1f} ms "
              f"over the WebSocket vs {s['step_ms']:.1f} ms for StreamPredictor.step alone "
              f"(+{s['ws_ms'] - s['step_ms']:.1f} ms, {s['ws_ms'] / s['step_ms']:.2f}x)")


if __name__ == "__main__":
    main()
