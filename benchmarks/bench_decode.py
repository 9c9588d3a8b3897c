"""Decoding against the tools people use instead: 8-segment sparse sampling, clips per second.

Every library opens the file, decodes the 8 frames of one TSN clip to RGB ``uint8 (8, H, W, 3)``
and closes it, once per clip (as a dataset item does):

  - ``vidcls``: ``VideoReader.get_frames`` (demux index, seek to the keyframe before each
    wanted frame, decode forward skipping unreferenced frames nobody wants, stop reading at the
    last wanted frame's packet and drain the decoder, one RGB converter per reader),
  - ``decord`` (0.6, the last release) and ``decord2`` (its maintained fork): ``get_batch``,
  - ``torchcodec``: ``VideoDecoder(seek_mode="exact").get_frames_at``, and ``torchcodec-approx``
    (``seek_mode="approximate"``: no scan at open, positions from the header's rate).

Clips: test mode (segment centres, the same clip every round) and train mode (a random frame per
segment, new draws every round; every library gets the same indices). Threads: 1, and 0 = the
decoder library's automatic choice, which is what ``VideoClipDataset`` uses (``VideoReader``'s
default ``threads=0``). The libraries run in one worker process each (decord and decord2 both
install a module named ``decord``, and each library bundles or loads its own FFmpeg), driven
round by round from this process: within a round every library decodes the same clips one after
the other (the order rotates), and ``ours / best`` is the median over rounds of the per-round
ratio to the fastest other library, so machine drift cancels. ``CPU`` is the least CPU time per
clip of the other libraries over ours (process CPU, all threads): on a busy shared machine the
steadier figure of how much work each library does.

Exactness: the first, untimed round of each setting (also the warm-up) checks every frame each
library returns: the test videos carry the frame number as a barcode, so the frame a library
returned is read off the image and compared with the one asked for; the mean absolute difference to the same
frame of a full sequential PyAV decode is printed beside it (RGB conversions differ a little
between FFmpeg builds; a different frame differs a lot).

Installing the competitors (never dependencies of vidcls; a scratch environment layered on the
one vidcls is installed in, so torch is not replaced):

    python -m venv /tmp/vdec/a && python -m venv /tmp/vdec/b
    python -c "import site; print(site.getsitepackages()[0])" | tee \\
        /tmp/vdec/a/lib/python3.11/site-packages/vidcls_env.pth \\
        /tmp/vdec/b/lib/python3.11/site-packages/vidcls_env.pth
    /tmp/vdec/a/bin/pip install decord torchcodec==0.13.0   # see below for 0.13
    /tmp/vdec/b/bin/pip install decord2                       # also a module named decord
    apt-get install libavcodec59 libavformat59 libavutil57 libswscale6 libswresample4 \\
        libavdevice59 libavfilter8                            # torchcodec loads system FFmpeg

(torchcodec 0.14 - 0.17 on PyPI are linked against CUDA torch - ``libtorch_cuda.so``,
``libnvrtc.so.13`` - and do not load beside a CPU-only torch; 0.13 is the newest PyPI build
linked against CPU torch, and supports torch >= 2.11.) Then:

    python benchmarks/bench_decode.py --python decord=/tmp/vdec/a/bin/python \\
        --python torchcodec=/tmp/vdec/a/bin/python --python decord2=/tmp/vdec/b/bin/python
    python benchmarks/bench_decode.py --quick ...       # smoke run, ~1 minute

A library its interpreter cannot import is reported as missing and left out.
"""
from __future__ import annotations

import argparse
import os
import pickle
import statistics
import struct
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

LIBRARIES = ("vidcls", "decord", "decord2", "torchcodec", "torchcodec-approx")
MODULE = {"vidcls": "vidcls", "decord": "decord", "decord2": "decord",
          "torchcodec": "torchcodec", "torchcodec-approx": "torchcodec"}
BITS = 10  # barcode bits: frame numbers up to 1023


# --------------------------------------------------------------------------- test videos
def barcode(index: int, width: int, height: int) -> tuple[int, list[int]]:
    """Band height and the bit of each of ``BITS`` blocks that encode ``index``."""
    return max(16, height // 20), [(index >> b) & 1 for b in range(BITS)]


def read_barcode(image: np.ndarray) -> int:
    """The frame number drawn into ``uint8 (H, W, 3)`` by ``make_video``."""
    h, w = image.shape[:2]
    band, _ = barcode(0, w, h)
    block = w // BITS
    value = 0
    for b in range(BITS):  # the middle of each block: clear of the edges x264 blurs
        x0, x1 = b * block + block // 4, (b + 1) * block - block // 4
        value |= int(image[band // 4: 3 * band // 4, x0:x1].mean() > 128) << b
    return value


def make_video(path: Path, width: int, height: int, seconds: float, fps: int, gop: int,
               seed: int) -> None:
    """A panning texture with a moving square (work for x264's motion search) and the frame
    number as a barcode along the top; x264 preset medium (3 B-frames, B-pyramid, 3 refs)."""
    import av
    import torch

    rng = np.random.default_rng(seed)
    small = rng.integers(0, 256, (height // 16 + 8, width // 16 + 8, 3), dtype=np.uint8)
    tex = torch.nn.functional.interpolate(
        torch.from_numpy(small).permute(2, 0, 1)[None].float(), scale_factor=16,
        mode="bilinear", align_corners=False)[0].permute(1, 2, 0).to(torch.uint8).numpy()
    tmp = path.with_suffix(".tmp.mp4")
    block = width // BITS
    with av.open(str(tmp), "w") as c:
        s = c.add_stream("libx264", rate=fps)
        s.width, s.height, s.pix_fmt = width, height, "yuv420p"
        s.codec_context.gop_size = gop
        s.options = {"preset": "medium", "crf": "23"}
        s.thread_type = "AUTO"
        for i in range(int(seconds * fps)):
            dy, dx = int(i * 0.7) % 96, int(i * 1.3) % 96  # pan (whole pixels)
            img = np.ascontiguousarray(tex[dy:dy + height, dx:dx + width])  # (H, W, 3)
            x = int((0.5 + 0.4 * np.sin(i / fps * 2)) * (width - height // 4))
            img[height // 3: height // 3 + height // 4, x: x + height // 4] = (255, 40, 40)
            band, bits = barcode(i, width, height)
            for b, bit in enumerate(bits):
                img[:band, b * block:(b + 1) * block] = 255 if bit else 0
            for p in s.encode(av.VideoFrame.from_ndarray(img, format="rgb24")):
                c.mux(p)
        for p in s.encode():
            c.mux(p)
    os.replace(tmp, path)


def reference_frames(path: Path, step: int = 4) -> list[np.ndarray]:
    """Every frame of a plain sequential PyAV decode, subsampled ``[::step, ::step]``; checks
    that the barcode survived the encoder (else the frame check would mean nothing)."""
    import av

    out = []
    with av.open(str(path)) as c:
        c.streams.video[0].thread_type = "AUTO"
        for i, f in enumerate(c.decode(video=0)):
            image = f.to_ndarray(format="rgb24")
            if read_barcode(image) != i:
                raise SystemExit(f"{path}: frame {i} carries barcode {read_barcode(image)}")
            out.append(image[::step, ::step])
    return out


# --------------------------------------------------------------------------- decoders (worker)
def _decoder(lib: str):
    """``decode(path, indices, threads) -> uint8 (len(indices), H, W, 3)`` for one library,
    open and close included (one clip = one dataset item)."""
    if lib == "vidcls":
        from vidcls.data.video import VideoReader

        def decode(path, indices, threads):
            with VideoReader(path, threads=threads) as r:
                return r.get_frames(indices)
        return decode
    if lib in ("decord", "decord2"):
        from importlib.metadata import version

        version(lib)  # both install a module named decord: make sure it is this one
        import decord

        def decode(path, indices, threads):
            vr = decord.VideoReader(path, ctx=decord.cpu(0), num_threads=threads)
            out = vr.get_batch(list(indices)).asnumpy()
            del vr
            return out
        return decode
    if lib.startswith("torchcodec"):
        from torchcodec.decoders import VideoDecoder

        mode = "approximate" if lib.endswith("approx") else "exact"

        def decode(path, indices, threads):
            d = VideoDecoder(path, num_ffmpeg_threads=threads, dimension_order="NHWC",
                             seek_mode=mode)
            return d.get_frames_at(list(indices)).data.numpy()
        return decode
    raise ValueError(lib)


def _version(lib: str) -> str:
    from importlib.metadata import version

    dist = {"vidcls": "vidcls", "decord": "decord", "decord2": "decord2",
            "torchcodec": "torchcodec", "torchcodec-approx": "torchcodec"}[lib]
    try:
        return version(dist)
    except Exception:
        return "?"


def _send(stream, obj) -> None:
    data = pickle.dumps(obj, protocol=pickle.HIGHEST_PROTOCOL)
    stream.write(struct.pack("<Q", len(data)) + data)
    stream.flush()


def _recv(stream):
    head = stream.read(8)
    if len(head) < 8:
        raise EOFError("worker closed its pipe")
    (n,) = struct.unpack("<Q", head)
    return pickle.loads(stream.read(n))


def worker(lib: str) -> None:
    """Serve decode requests on stdin/stdout; library chatter goes to stderr."""
    proto_out = os.fdopen(os.dup(1), "wb")
    os.dup2(2, 1)  # anything printed by the libraries lands on stderr
    proto_in = sys.stdin.buffer
    try:
        decode = _decoder(lib)
    except Exception as e:  # not installed / does not load
        _send(proto_out, {"error": f"{type(e).__name__}: {str(e).splitlines()[0][:160]}"})
        return
    _send(proto_out, {"version": _version(lib)})
    while True:
        req = _recv(proto_in)
        if req is None:
            return
        try:
            if req["kind"] == "frames":
                reply = [decode(req["path"], idx, req["threads"]) for idx in req["clips"]]
            else:  # "time": (wall, CPU) seconds for all clips, open + decode + close each
                t, c = time.perf_counter(), time.process_time()
                for idx in req["clips"]:
                    decode(req["path"], idx, req["threads"])
                reply = (time.perf_counter() - t, time.process_time() - c)
        except Exception as e:
            reply = {"error": f"{type(e).__name__}: {str(e).splitlines()[0][:160]}"}
        _send(proto_out, reply)


class Worker:
    """One library in its own process (own interpreter, own FFmpeg)."""

    def __init__(self, lib: str, python: str):
        self.lib = lib
        env = dict(os.environ, PYTHONUNBUFFERED="1")
        self.proc = subprocess.Popen([python, os.path.abspath(__file__), "--worker", lib],
                                     stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                     stderr=subprocess.DEVNULL, env=env)
        hello = _recv(self.proc.stdout)
        self.error = hello.get("error")
        self.version = hello.get("version")

    def ask(self, **req):
        """The worker's reply, or ``{"error": ...}`` once its process has died (a crash in
        the library)."""
        if self.error:
            return {"error": self.error}
        try:
            _send(self.proc.stdin, req)
            return _recv(self.proc.stdout)
        except (EOFError, BrokenPipeError):
            self.error = f"worker process died (exit code {self.proc.wait()})"
            return {"error": self.error}

    def close(self) -> None:
        try:
            _send(self.proc.stdin, None)
            self.proc.wait(timeout=10)
        except Exception:
            self.proc.kill()


# --------------------------------------------------------------------------- the benchmark
def clips_for(mode: str, total: int, round_: int, per_round: int, num_frames: int) -> list:
    from vidcls.data.sampling import segment_indices

    if mode == "test":
        return [segment_indices(num_frames, total, train=False)[0].tolist()] * per_round
    rng = np.random.default_rng([round_, total])
    return [segment_indices(num_frames, total, train=True, rng=rng)[0].tolist()
            for _ in range(per_round)]


def check(frames_per_clip: list, clips: list, ref: list, step: int) -> tuple[int, int, float, str]:
    """(frames checked, frames that are not the one asked for, worst mean |diff| vs the
    sequential decode of the asked-for frame, example of a wrong frame)."""
    bad, worst, example = 0, 0.0, ""
    n = 0
    for frames, idx in zip(frames_per_clip, clips):
        for f, want in zip(frames, idx):
            n += 1
            got = read_barcode(f)
            if got != want:
                bad += 1
                example = example or f"asked {want}, got {got}"
            diff = np.abs(f[::step, ::step].astype(np.int16) - ref[want].astype(np.int16))
            worst = max(worst, float(diff.mean()))
    return n, bad, worst, example


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--worker", help=argparse.SUPPRESS)
    p.add_argument("--python", action="append", default=[], metavar="LIB=PYTHON",
                   help="interpreter that has LIB installed (default: this one); repeatable")
    p.add_argument("--libs", default=",".join(LIBRARIES))
    p.add_argument("--videos", default="480p:250,720p:250,480p:12,720p:12",
                   help="SIZE:GOP list; SIZE in 480p (640x480), 720p (1280x720)")
    p.add_argument("--seconds", type=float, default=10.0)
    p.add_argument("--fps", type=int, default=30)
    p.add_argument("--threads", default="1,0", help="decoder threads; 0 = automatic (what "
                   "the dataset uses)")
    p.add_argument("--modes", default="test,train")
    p.add_argument("--rounds", type=int, default=4)
    p.add_argument("--clips", type=int, default=2, help="clips per library per round")
    p.add_argument("--num-frames", type=int, default=8)
    p.add_argument("--cache-dir", default=os.path.join(tempfile.gettempdir(),
                                                       "vidcls_bench_decode"))
    p.add_argument("--quick", action="store_true", help="smoke run: 4 s videos, 2 rounds "
                   "of 1 clip, 480p only")
    args = p.parse_args()
    if args.worker:
        return worker(args.worker)
    if args.quick:
        args.seconds, args.rounds, args.clips = 4.0, 2, 1
        args.videos = ",".join(v for v in args.videos.split(",") if v.startswith("480p"))

    import av

    from vidcls.repro.timing import machine_line

    pythons = dict(kv.split("=", 1) for kv in args.python)
    print(machine_line(), flush=True)
    print(f"PyAV {av.__version__}, {os.cpu_count()} CPUs, load average "
          f"{' '.join(f'{x:.2f}' for x in os.getloadavg())}; {args.num_frames}-segment clips, "
          f"open + decode to RGB + close per clip, {args.rounds} rounds x {args.clips} clips",
          flush=True)
    workers = {}
    for lib in args.libs.split(","):
        w = Worker(lib, pythons.get(lib, pythons.get(MODULE[lib], sys.executable)))
        if w.error:
            print(f"  {lib}: not available ({w.error})", flush=True)
            w.close()
        else:
            workers[lib] = w
    print("libraries: " + ", ".join(f"{k} {w.version}" for k, w in workers.items()), flush=True)

    sizes = {"480p": (640, 480), "720p": (1280, 720)}
    cache = Path(args.cache_dir)
    cache.mkdir(parents=True, exist_ok=True)
    step = 4
    rows = []
    try:
        for spec in args.videos.split(","):
            size, gop = spec.split(":")
            w_, h_ = sizes[size]
            path = cache / f"{size}_gop{gop}_{args.seconds:g}s_{args.fps}fps.mp4"
            if not path.exists():
                t = time.perf_counter()
                make_video(path, w_, h_, args.seconds, args.fps, int(gop), seed=0)
                print(f"  encoded {path} in {time.perf_counter() - t:.1f} s", flush=True)
            ref = reference_frames(path, step)
            total = len(ref)
            for mode in args.modes.split(","):
                for threads in (int(t) for t in args.threads.split(",")):
                    rows.append(measure(workers, path, f"{size} GOP {gop}", total, mode,
                                        threads, ref, step, args))
    finally:
        for w in workers.values():
            w.close()
    summary(rows, list(workers))
    print(f"\nload average at the end: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")


def measure(workers: dict, path: Path, name: str, total: int, mode: str, threads: int,
            ref: list, step: int, args) -> dict:
    """Interleaved rounds for one (video, mode, threads) setting; prints one line."""
    libs = list(workers)
    times = {lib: [] for lib in libs}
    cpu = {lib: [] for lib in libs}
    exact = {}
    for r in range(args.rounds + 1):  # round 0: exactness check + warm-up, not timed
        clips = clips_for(mode, total, r, args.clips, args.num_frames)
        order = libs[r % len(libs):] + libs[:r % len(libs)]
        for lib in order:
            if r == 0:
                out = workers[lib].ask(kind="frames", path=str(path), clips=clips,
                                       threads=threads)
                exact[lib] = (out if isinstance(out, dict) else check(out, clips, ref, step))
                continue
            t = workers[lib].ask(kind="time", path=str(path), clips=clips, threads=threads)
            if isinstance(t, dict):
                exact[lib] = t
            else:
                times[lib].append(t[0])
                cpu[lib].append(t[1])
    cps = {lib: args.clips / statistics.median(ts) for lib, ts in times.items() if ts}
    cpu_ms = {lib: 1000 * statistics.median(cs) / args.clips for lib, cs in cpu.items() if cs}
    others = [lib for lib in cps if lib != "vidcls"]
    best = max(others, key=cps.get) if others else None
    ratio = cpu_ratio = None
    if best and "vidcls" in cps:  # per-round ratios: drift of a shared machine cancels
        ratio = statistics.median(b / a for a, b in zip(times["vidcls"], times[best]))
        cpu_ratio = min(cpu_ms[lib] for lib in others) / cpu_ms["vidcls"]
    row = dict(name=name, mode=mode, threads=threads, cps=cps, cpu_ms=cpu_ms, best=best,
               ratio=ratio, cpu_ratio=cpu_ratio, exact=exact)
    notes = []
    for lib, e in exact.items():
        if isinstance(e, dict):
            notes.append(f"{lib} failed: {e['error']}")
        elif e[1]:
            notes.append(f"{lib}: {e[1]}/{e[0]} frames wrong ({e[3]})")
    diffs = " ".join(f"{lib} {e[2]:.1f}" for lib, e in exact.items() if not isinstance(e, dict))
    print(f"  {name:>13} {mode:>5} threads={threads}: "
          + ", ".join(f"{lib} {c:6.2f}" for lib, c in cps.items())
          + " clips/s" + (f" | ours / best ({best}) {ratio:.2f}x" if ratio else "")
          + "\n      CPU ms per clip: " + ", ".join(f"{k} {v:.0f}" for k, v in cpu_ms.items())
          + (f" (least of the others / ours {cpu_ratio:.2f}x)" if cpu_ratio else "")
          + f" | frames wrong: {sum(e[1] for e in exact.values() if isinstance(e, tuple))}"
          + f", mean|diff| vs sequential: {diffs}"
          + "".join(f"\n      ! {n}" for n in notes), flush=True)
    return row


def summary(rows: list, libs: list) -> None:
    """The markdown table docs/benchmarks.md quotes."""
    print("\nclips/s (wall clock); ours / best = per-round ratio to the fastest other library; "
          "CPU = its CPU time per clip / ours")
    print("\n| video | clips | threads | " + " | ".join(libs) + " | ours / best | CPU |")
    print("| --- | --- | ---: | " + " | ".join("---:" for _ in libs) + " | ---: | ---: |")
    for r in rows:
        cells = []
        for lib in libs:
            c = r["cps"].get(lib)
            e = r["exact"].get(lib)
            wrong = isinstance(e, tuple) and e[1] > 0
            cells.append("failed" if c is None else f"{c:.2f}" + (" (inexact)" if wrong else ""))
        ratio = f"**{r['ratio']:.2f}x** vs {r['best']}" if r["ratio"] else "-"
        cpu = f"{r['cpu_ratio']:.2f}x" if r["cpu_ratio"] else "-"
        print(f"| {r['name']} | {r['mode']} | {r['threads'] or 'auto'} | "
              + " | ".join(cells) + f" | {ratio} | {cpu} |")


if __name__ == "__main__":
    main()
