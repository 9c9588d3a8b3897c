"""``vidcls demo``: the TSM paper's central claim, reproduced on a laptop CPU with no download.

1. generate the synthetic ``temporal`` dataset (classes differ only in the order of frames:
   moving right vs. moving left, approaching vs. receding, ...),
2. train a TSN and a TSM with the same backbone, data, recipe and budget,
3. evaluate both (top-1 / top-5 / mean class accuracy, confusion matrices),
4. print the comparison table: TSN cannot tell a video from its time reversal (about chance
   within each pair of classes), TSM can,
5. predict a held-out video with both checkpoints,
6. stream that video through online TSM frame by frame and check that the streamed result
   equals the offline model's.

The demo's TSM uses the *unidirectional* shift (past -> present only), the online-capable model
of the paper, so the same checkpoint serves offline evaluation and frame-by-frame streaming.

Everything lands in the run directory: ``data/`` (the videos), ``tsn/`` and ``tsm/`` (config,
metrics.jsonl, TensorBoard logs, checkpoints, ``eval_val/`` with confusion matrix CSV/PNG and
per-video predictions), ``curves.png`` (loss / accuracy per epoch), ``summary.md`` and
``summary.json``.
"""
from __future__ import annotations

import json
import os
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import torch

from vidcls.engine.config import Config, from_dict
from vidcls.info import count_parameters
from vidcls.viz import plot_curves, pyplot


@dataclass
class DemoSettings:
    """Sizes of one demo run (the full run is budgeted for 10 minutes on 2 CPU cores)."""

    num_classes: int = 4           # 2 pairs of time-reversed classes
    videos_per_class: int = 60     # 48 for training, 12 held out
    video_frames: int = 16         # frames in each synthetic video file
    size: int = 32                 # video width = height (pixels)
    num_frames: int = 8            # frames sampled per clip (T)
    backbone: str = "resnet18"
    epochs: int = 14
    batch_size: int = 8
    lr: float = 0.002
    weight_decay: float = 0.05
    workers: int = 0               # DataLoader processes per training run (0: decode inline;
    #                                tiny videos decode in ~1 ms, a worker would steal a core)


FULL = DemoSettings()
QUICK = DemoSettings(num_classes=4, videos_per_class=6, video_frames=8, size=32, num_frames=4,
                     epochs=1, batch_size=6, workers=0)


def demo_config(model: str, data_root: Path, out: Path, s: DemoSettings,
                seed: int = 0) -> Config:
    """The training config of one demo model (``configs/demo_tsm.yaml`` is the same recipe)."""
    options = {"dropout": 0.0}
    if model.startswith("tsm_"):
        options.update(shift_div=8, shift_place="residual", shift_mode="unidirectional")
    return from_dict({
        "model": {"name": model, **options},
        "data": {"format": "list", "root": str(data_root), "num_frames": s.num_frames,
                 "batch_size": s.batch_size, "workers": s.workers, "input_size": s.size,
                 "resize": s.size, "crop": "multiscale", "flip": False},
        "train": {"epochs": s.epochs, "optimizer": "adamw", "lr": s.lr,
                  "weight_decay": s.weight_decay, "scheduler": "cosine",
                  "warmup_epochs": min(1.0, s.epochs / 4),
                  "log_every": 5, "clip_grad_norm": 20.0},
        "output_dir": str(out), "seed": seed, "device": "cpu",
    })


def _history(run_dir: Path) -> list[dict]:
    """Per-epoch records of a finished run (from its metrics.jsonl)."""
    path = run_dir / "metrics.jsonl"
    if not path.is_file():
        return []
    rows = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
    return [r for r in rows if r.get("kind") == "epoch"]


def train_side_by_side(configs: dict[str, Config], out: Path, *, n_train: int,
                       progress: bool = True) -> dict[str, float]:
    """Train every config in its own ``vidcls train`` process, all at once (the job pool of
    :mod:`vidcls.repro.runner`: the cores split evenly between the processes, the same budget
    for every model by construction); returns the seconds each took.

    The parent follows each run's ``metrics.jsonl`` to draw one progress bar per model (plain
    lines per finished epoch without ``progress``); each run's own output goes to
    ``OUTPUT_DIR/train.log``. A failed run stops the others and raises with its last lines.
    """
    from vidcls.engine.config import save_config
    from vidcls.repro.runner import Job, run_jobs

    jobs = []
    for label, cfg in configs.items():
        run = Path(cfg.output_dir)
        run.mkdir(parents=True, exist_ok=True)
        for stale in ("metrics.jsonl", "train.log"):  # this demo run's files only
            (run / stale).unlink(missing_ok=True)
        config_path = out / f"{label.lower()}.yaml"
        save_config(cfg, config_path)
        jobs.append(Job(label, [sys.executable, "-m", "vidcls", "train", str(config_path),
                                "--no-progress"], run / "train.log"))
    printed = dict.fromkeys(configs, 0)
    bars = {}
    if progress:
        from tqdm import tqdm

        for i, (label, cfg) in enumerate(configs.items()):
            steps = cfg.train.epochs * -(-n_train // cfg.data.batch_size)
            bars[label] = tqdm(total=steps, desc=f"{label} training", position=i,
                               dynamic_ncols=True, unit="step", file=sys.stderr)

    def print_epochs(label: str) -> None:
        """Plain lines, one per finished epoch (logs, CI, --no-progress)."""
        hist = _history(Path(configs[label].output_dir))
        for h in hist[printed[label]:]:
            print(f"  {label} epoch {h['epoch']}/{configs[label].train.epochs}: "
                  f"loss {h['train_loss']:.3f}, val top-1 "
                  f"{h.get('val_top1', float('nan')):.1f}%", flush=True)
        printed[label] = len(hist)

    def on_poll(running: list[str]) -> None:
        for label in running:
            if label in bars:
                _update_bar(bars[label], Path(configs[label].output_dir) / "metrics.jsonl")
            else:
                print_epochs(label)

    def on_finish(result) -> None:
        if not result.ok:
            raise RuntimeError(f"{result.name} training failed (exit code {result.returncode}); "
                               f"last lines of {result.log}:\n" + "\n".join(result.tail(15)))

    try:
        results = run_jobs(jobs, parallel=min(len(jobs), os.cpu_count() or 1), poll_seconds=0.5,
                           on_poll=on_poll, on_finish=on_finish, grace_seconds=0)
    finally:
        for bar in bars.values():
            bar.close()
    for label in configs:
        if not progress:
            print_epochs(label)
        print(f"  {label}: trained in {results[label].seconds:.0f}s", flush=True)
    return {label: r.seconds for label, r in results.items()}


def _update_bar(bar, metrics: Path) -> None:
    if not metrics.is_file():
        return
    steps, post = 0, {}
    for line in metrics.read_text().splitlines():
        try:
            r = json.loads(line)
        except ValueError:  # a line being written right now
            continue
        steps = max(steps, r.get("step", 0))
        if r.get("kind") == "train":
            post.update(loss=f"{r['loss']:.3f}", clips_s=f"{r['clips_per_s']:.1f}")
        elif r.get("kind") == "epoch" and "val_top1" in r:
            post["val_top1"] = f"{r['val_top1']:.0f}%"
    if steps == bar.n and post == getattr(bar, "_vidcls_post", {}):
        return  # nothing new: do not redraw
    bar._vidcls_post = post
    if post:
        bar.set_postfix(post, refresh=False)
    bar.update(steps - bar.n)


def _say(step: int, total: int, text: str) -> None:
    print(f"\n[{step}/{total}] {text}", flush=True)


def demo_plots(run_dir: str | Path) -> list[str]:
    """Plots for a ``vidcls demo`` run directory (also ``vidcls bench report --demo``):
    ``accuracy.png`` (TSN vs TSM top-1 and mean class accuracy with the chance levels) and
    ``explain_tsn.png`` / ``explain_tsm.png`` (Grad-CAM on the video the demo predicted)."""
    from vidcls.repro.examples import explain_png
    from vidcls.repro.plots import plot_demo_accuracy

    run = Path(run_dir)
    summary = json.loads((run / "summary.json").read_text())
    plot_demo_accuracy(summary, run / "accuracy.png")
    written = [str(run / "accuracy.png")]
    video = summary.get("prediction", {}).get("video")
    for label, model in summary["models"].items():
        ckpt = model.get("checkpoint")
        if not (video and ckpt and Path(ckpt).exists()):
            continue
        written.append(explain_png(video, ckpt, run / f"explain_{label.lower()}.png"))
    return written


def _report_plots(out: Path) -> list[str]:
    """:func:`demo_plots` as names relative to ``out``; none without matplotlib."""
    if pyplot() is None:
        return []
    return [str(Path(p).relative_to(out)) for p in demo_plots(out)]


def stream_video(checkpoint: Path, video: str, *, show: bool = True) -> dict:
    """Feed ``video`` frame by frame to online TSM; compare with the offline model."""
    from vidcls.models.online_tsm import OnlineTSM
    from vidcls.inference.predict import Predictor

    pred = Predictor(checkpoint)
    clip, x = pred.load_clip(video)  # the frames the offline model sees, normalised (T, 3, H, W)
    online = OnlineTSM(pred.model).eval()
    online.reset()
    per_frame, times = [], []
    with torch.no_grad():
        for t in range(x.shape[0]):
            start = time.perf_counter()
            logits = online.step(x[t:t + 1])  # (1, K)
            times.append(time.perf_counter() - start)
            per_frame.append(logits[0])
            running = torch.stack(per_frame).mean(0).softmax(-1)  # average of frames so far
            p, k = running.max(0)
            if show:
                print(f"  frame {t + 1:2d}/{x.shape[0]}: {pred.classes[int(k)]:<24} "
                      f"{100 * float(p):5.1f}%   ({1000 * times[-1]:.1f} ms)", flush=True)
        offline = pred.model(x[None])[0]  # (K,)
    streamed = torch.stack(per_frame).mean(0)
    diff = float((streamed - offline).abs().max())
    final = streamed.softmax(-1)
    p, k = final.max(0)
    return {"video": video, "frames": int(x.shape[0]), "prediction": pred.classes[int(k)],
            "probability": float(p), "max_abs_diff_vs_offline": diff,
            "ms_per_frame": 1000 * sorted(times)[len(times) // 2]}  # median


def run_demo(out_dir: str | Path | None = None, *, quick: bool = False,
             workers: int | None = None, epochs: int | None = None, progress: bool = True,
             settings: DemoSettings | None = None) -> dict:
    """Run the whole demo; returns the summary dict (also written to ``summary.json``)."""

    s = settings or (QUICK if quick else FULL)
    if workers is not None:
        s = DemoSettings(**{**asdict(s), "workers": workers})
    if epochs is not None:
        s = DemoSettings(**{**asdict(s), "epochs": epochs})
    threads = torch.get_num_threads()
    # The in-process steps (evaluation, prediction, streaming) run on tiny tensors: one thread
    # is as fast and never stalls in OpenMP spin-waits on a busy machine.
    torch.set_num_threads(1)
    try:
        return _run(s, out_dir, quick=quick, progress=progress)
    finally:
        torch.set_num_threads(threads)


def _run(s: DemoSettings, out_dir, *, quick: bool, progress: bool) -> dict:
    from vidcls.data.synthetic import generate
    from vidcls.engine.evaluate import evaluate
    from vidcls.inference.predict import Predictor

    out = Path(out_dir or ("runs/demo-quick" if quick else "runs/demo"))
    out.mkdir(parents=True, exist_ok=True)
    start = time.perf_counter()
    steps = 6
    print(f"vidcls demo{' --quick' if quick else ''}: TSN vs TSM on synthetic temporal videos "
          f"-> {out}/", flush=True)

    _say(1, steps, f"generating the synthetic temporal dataset ({s.num_classes} classes x "
                   f"{s.videos_per_class} videos, {s.video_frames} frames of {s.size}x{s.size})")
    info = generate(out / "data", "temporal", num_classes=s.num_classes,
                    videos_per_class=s.videos_per_class, num_frames=s.video_frames,
                    size=s.size, seed=0, workers=max(2, os.cpu_count() or 1))
    print(f"  {info['num_train']} training / {info['num_val']} validation videos, classes: "
          f"{', '.join(info['classes'])}"
          + (f" ({info['seconds']:.1f}s)" if info["seconds"] else " (reused)"), flush=True)

    models = {"TSN": f"tsn_{s.backbone}", "TSM": f"tsm_{s.backbone}"}
    configs = {label: demo_config(name, out / "data", out / label.lower(), s)
               for label, name in models.items()}
    _say(2, steps, f"training TSN ({models['TSN']}) and TSM ({models['TSM']}, unidirectional "
                   f"shift) side by side, same data and budget: {s.epochs} epochs, "
                   f"{s.num_frames} frames x {s.size}x{s.size}, batch {s.batch_size}")
    train_seconds = train_side_by_side(configs, out, n_train=info["num_train"],
                                       progress=progress)

    _say(3, steps, "evaluating both checkpoints on the held-out videos")
    results: dict[str, dict] = {}
    for label, cfg in configs.items():
        last = Path(cfg.output_dir) / "checkpoints" / "last"
        metrics = evaluate(cfg, last, progress=False)
        history = _history(Path(cfg.output_dir))
        results[label] = {"model": models[label], "config": cfg.to_dict(),
                          "train_seconds": train_seconds[label], "history": history,
                          "eval": metrics, "checkpoint": str(last)}
        print(f"  {label}: top-1 {metrics['top1']:.1f}%, confusion matrix in "
              f"{metrics['output_dir']}/confusion_matrix.png", flush=True)

    _say(4, steps, "results on the held-out videos (1 clip x 1 crop)")
    table = format_table(results, s)
    print(table, flush=True)

    _say(5, steps, "predicting a held-out video with both checkpoints")
    val_lines = (out / "data" / "val.txt").read_text().split("\n")
    rel, true_label = val_lines[1 if len(val_lines) > 2 else 0].rsplit(" ", 1)
    video = str(out / "data" / rel)
    classes = info["classes"]
    predictions = {}
    for label in models:
        r = Predictor(results[label]["checkpoint"])(video, top_k=3)[0]
        predictions[label] = r
        top = ", ".join(f"{p['label']} {100 * p['probability']:.0f}%" for p in r["predictions"])
        print(f"  {label}: {top}", flush=True)
    print(f"  (true class: {classes[int(true_label)]}; video {video})", flush=True)

    _say(6, steps, "streaming the same video through online TSM, one frame at a time")
    stream = stream_video(Path(results["TSM"]["checkpoint"]), video)
    print(f"  streamed result: {stream['prediction']} ({100 * stream['probability']:.0f}%); "
          f"same as the offline model: max |logit difference| = "
          f"{stream['max_abs_diff_vs_offline']:.2e}; {stream['ms_per_frame']:.1f} ms per frame",
          flush=True)

    curves = plot_curves({k: v["history"] for k, v in results.items()}, out / "curves.png")
    total = time.perf_counter() - start
    gap = results["TSM"]["eval"]["top1"] - results["TSN"]["eval"]["top1"]
    summary = {
        "settings": asdict(s), "seconds": total, "table": table,
        "models": {k: {kk: vv for kk, vv in v.items() if kk != "config"}
                   for k, v in results.items()},
        "tsm_minus_tsn_top1": gap, "prediction": {"video": video,
                                                  "true": classes[int(true_label)],
                                                  **predictions},
        "stream": stream, "plots": ["curves.png"] if curves else [],
    }
    (out / "summary.json").write_text(json.dumps(summary, indent=2, default=str) + "\n")
    extra = _report_plots(out)  # accuracy.png, explain_tsn.png, explain_tsm.png
    if extra:
        summary["plots"] += extra
        (out / "summary.json").write_text(json.dumps(summary, indent=2, default=str) + "\n")
    (out / "summary.md").write_text(
        "# vidcls demo: TSN vs TSM on synthetic temporal videos\n\n" + "```\n" + table
        + "\n```\n\n" + f"Streaming check: {stream['prediction']} "
        f"(max |streamed - offline| = {stream['max_abs_diff_vs_offline']:.2e}).\n\n"
        + "Plots: " + ", ".join(f"`{p}`" for p in summary["plots"] + [
            "tsn/eval_val/confusion_matrix.png", "tsm/eval_val/confusion_matrix.png"]) + ".\n")
    print(f"\nvidcls demo: done in {total / 60:.1f} min. TSM - TSN = {gap:+.1f} points top-1. "
          f"Run directory: {out}/ (summary.md, curves.png, tsn/ and tsm/ with checkpoints, "
          f"metrics.jsonl and eval_val/confusion_matrix.png)", flush=True)
    if not quick and gap < 20:
        print("vidcls demo: warning: TSM did not clearly beat TSN this time; see "
              f"{out}/curves.png", file=sys.stderr)
    return summary


def format_table(results: dict[str, dict], s: DemoSettings) -> str:
    head = (f"{'model':<38}{'params':>8}{'top-1':>8}{'top-5':>8}{'mean cls':>10}"
            f"{'train':>8}")
    lines = [head, "-" * len(head)]
    from vidcls.models import create_model

    for label, r in results.items():
        m = r["eval"]
        desc = (f"TSN {s.backbone} (no shift)" if label == "TSN" else
                f"TSM {s.backbone} (online, uni-dir. 1/8)")
        model = create_model(r["model"], num_classes=s.num_classes, num_frames=s.num_frames)
        lines.append(f"{desc:<38}{count_parameters(model) / 1e6:>7.1f}M{m['top1']:>7.1f}%"
                     f"{m['top5']:>7.1f}%{m['mean_class_acc']:>9.1f}%"
                     f"{r['train_seconds']:>7.0f}s")
    n_pairs = s.num_classes // 2
    lines.append(f"Chance: {100 / s.num_classes:.0f}%. Each class has a time-reversed twin "
                 f"({n_pairs} pairs): a frame-order-blind model tops out near 50%.")
    return "\n".join(lines)
