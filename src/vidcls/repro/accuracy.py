"""``vidcls bench accuracy``: the papers' accuracy patterns, reproduced at small scale.

What is compared (the four experiments, presets, starts, the plan of runs) is in
:mod:`vidcls.repro.experiments`; this module runs it.

Every (experiment, model, start, seed) cell is one line of ``results.jsonl`` in the output
directory (its ``start``: ``scratch`` or ``pretrained``), written as soon as its run ends, so
an interrupted benchmark resumes where it stopped (an interrupted *training* continues from its
last epoch checkpoint). A run whose configuration is identical to one already done for another
experiment (e.g. the default TSM is in ``table1`` and ``online``) is not trained again: its line
is copied with ``reused_from``.

Each run is a ``vidcls train``-style :func:`vidcls.engine.trainer.fit` followed by
:func:`vidcls.engine.evaluate.evaluate` (1 clip x 1 centre crop) in its own process
(``python -m vidcls.repro.accuracy``), several side by side with one thread each through the
job pool of :mod:`vidcls.repro.runner`. ``pretrained`` runs wait for the image pretraining of
their family: one more job of the same pool (a 1-frame TSN / a ``space`` TimeSformer on the
image corpus), trained once per pretraining recipe, resumable like any run, and cached as
``PRETRAIN_DIR/KEY.safetensors`` (weights in the names the builders' ``pretrained=`` reads) with
its results line in ``KEY.json``, so later runs, seeds and other output directories reuse it.
Once a run is scored its training state is deleted; the weights of the first seed's runs stay
(for ``vidcls explain`` and the report), all checkpoints with ``keep_checkpoints``. Config,
logs, metrics and predictions always stay.
"""
from __future__ import annotations

import json
import os
import shutil
import sys
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

from vidcls.repro.experiments import PRESETS, Preset, RunSpec, check_starts, plan, pretrain_key
from vidcls.repro.timing import time_calls

# --------------------------------------------------------------------------- one run
def _train_config(*, model: dict, data_root: Path, num_frames: int, batch_size: int,
                  size: int, epochs: int, lr: float, weight_decay: float, flip: bool,
                  max_steps: int | None, out_dir: Path, seed: int, device: str):
    from vidcls.engine.config import from_dict

    return from_dict({
        "model": model,
        "data": {"format": "list", "root": str(data_root), "num_frames": num_frames,
                 "batch_size": batch_size, "workers": 0, "input_size": size, "resize": size,
                 "crop": "multiscale", "flip": flip,
                 # decode each tiny video once, not every epoch (same clips either way)
                 "cache_mb": 2048},
        "train": {"epochs": epochs, "optimizer": "adamw", "lr": lr,
                  "weight_decay": weight_decay, "scheduler": "cosine",
                  "warmup_epochs": min(1.0, epochs / 4), "clip_grad_norm": 20.0,
                  # validate once, at the end: the benchmark scores the last epoch only
                  "eval_every": epochs, "log_every": 50, "tensorboard": False,
                  "max_steps_per_epoch": max_steps},
        "output_dir": str(out_dir), "seed": seed, "device": device,
    })


def run_config(spec: RunSpec, preset: Preset, data_root: Path, out_dir: Path,
               pretrained: Path | None = None):
    """The training config of one run (a plain ``vidcls train`` YAML once saved)."""
    r = preset.recipe(spec.family, spec.start)
    model = {"name": spec.model, "dropout": 0.0, **dict(spec.options)}
    if pretrained is not None:
        model["pretrained"] = str(pretrained)
    # no flip: it would turn "moving right" into "moving left"
    return _train_config(model=model, data_root=data_root, num_frames=preset.num_frames,
                         batch_size=r["batch_size"], size=preset.size, epochs=r["epochs"],
                         lr=r["lr"], weight_decay=preset.weight_decay, flip=False,
                         max_steps=preset.max_steps_per_epoch, out_dir=out_dir,
                         seed=spec.seed, device=preset.device)


def pretrain_config(family: str, preset: Preset, data_root: Path, out_dir: Path):
    """Image pretraining of one family: a TSN (no shift: a 2-D CNN per frame) or a ``space``
    TimeSformer (a ViT per frame), the classes being the shapes of single frames."""
    r = preset.pretrain_recipe(family)
    arch = dict(r["arch"])
    name = arch.pop("model")
    model = {"name": name, "dropout": 0.0, **arch}
    if family == "vit":
        model["attention"] = "space"
    return _train_config(model=model, data_root=data_root, num_frames=r.get("num_frames", 1),
                         batch_size=r["batch_size"], size=preset.size, epochs=r["epochs"],
                         lr=r["lr"], weight_decay=preset.weight_decay, flip=True,
                         max_steps=r["max_steps_per_epoch"], out_dir=out_dir, seed=0,
                         device=preset.device)



def export_pretrained(family: str, checkpoint: Path, path: Path) -> Path:
    """The pretrained image model as the file ``create_model(..., pretrained=path)`` reads:
    torchvision names for a CNN backbone, timm ViT names for TimeSformer (our ``space`` model's
    keys already are). The classifier is dropped: every video model has its own head."""
    from safetensors.torch import load_file, save_file

    state = load_file(str(checkpoint / "model.safetensors"))
    if family == "cnn":
        state = {k[len("backbone."):]: v for k, v in state.items() if k.startswith("backbone.")}
    else:
        state = {k: v for k, v in state.items() if not k.startswith("head.")}
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    save_file({k: v.contiguous() for k, v in state.items()}, str(tmp))
    tmp.replace(path)
    return path


def pair_accuracy(labels: list[int], preds: list[int]) -> float:
    """% of videos predicted as a class of the right *pair* (classes 2i and 2i+1 are a video
    and its time reversal on ``temporal``): what a frame-order-blind model can still get."""
    if not labels:
        return float("nan")
    return 100.0 * sum(a // 2 == b // 2 for a, b in zip(labels, preds)) / len(labels)


def inference_cost(model, input_shape: tuple[int, ...], repeats: int = 10) -> dict:
    """GFLOPs per clip (meta device) and median batch-1 CPU latency of a trained model."""
    import copy

    import torch

    from vidcls.info import count_flops

    with torch.device("meta"):
        meta_model = copy.deepcopy(model).to("meta")
    flops = count_flops(meta_model, input_shape)
    model = model.eval()
    x = torch.randn(input_shape)
    with torch.inference_mode():
        times = time_calls(lambda: model(x), repeats, warmup=1)
    return {"gflops": flops / 2e9, "latency_ms": 1000 * times.median}


def run_one(config_path: str | Path, result_path: str | Path, *,
            keep: str = "none") -> dict:
    """Train, evaluate and score one run; writes ``result_path`` (JSON). Runs in a worker
    process started by :func:`run_accuracy`.

    ``keep``: what stays of ``checkpoints/`` afterwards: ``"none"``, ``"model"`` (the weights of
    ``last``, for ``vidcls explain`` / ``predict``; the training state is deleted) or ``"all"``.
    """
    import torch

    from vidcls.engine.config import load_config
    from vidcls.engine.evaluate import evaluate
    from vidcls.engine.trainer import fit

    torch.set_num_threads(int(os.environ.get("OMP_NUM_THREADS", "1")))
    cfg = load_config(config_path)
    start = time.perf_counter()
    fit_result = fit(cfg, resume=True, progress=False)  # resume: an interrupted run continues
    train_s = time.perf_counter() - start
    if fit_result.stopped_by:
        raise RuntimeError(f"training stopped by {fit_result.stopped_by}")
    ckpt_dir = Path(cfg.output_dir) / "checkpoints"
    metrics = evaluate(cfg, ckpt_dir / "last", progress=False)
    rows = json.loads((Path(metrics["output_dir"]) / "predictions.json").read_text())
    labels = [r["label"] for r in rows]
    preds = [r["pred"] for r in rows]
    pair = pair_accuracy(labels, preds)
    from vidcls.engine.checkpoint import load_model
    from vidcls.info import count_parameters

    model, _ = load_model(ckpt_dir / "last")
    cost = inference_cost(model, (1, cfg.data.num_frames, 3, cfg.data.input_size,
                                  cfg.data.input_size))
    history = fit_result.history
    result = {
        "top1": metrics["top1"], "top5": metrics["top5"],
        "mean_class_acc": metrics["mean_class_acc"], "pair_acc": pair,
        # accuracy among videos whose pair was recognised: ~50 % = blind to frame order
        "within_pair_acc": 100.0 * metrics["top1"] / pair if pair else float("nan"),
        "num_val": metrics["num_videos"], "per_class_acc": metrics["per_class_acc"],
        "final_train_loss": history[-1]["train_loss"] if history else None,
        "final_train_top1": history[-1]["train_top1"] if history else None,
        "epochs": fit_result.epochs_done, "train_seconds": train_s,
        "seconds": time.perf_counter() - start,
        "params": count_parameters(model), **cost,
        "threads": torch.get_num_threads(),
        # CPU time of this process: what the run costs on an otherwise idle machine
        "cpu_seconds": _cpu_seconds(),
    }
    Path(result_path).write_text(json.dumps(result, indent=1) + "\n")
    if keep == "none":
        shutil.rmtree(ckpt_dir, ignore_errors=True)
    elif keep == "model":
        from vidcls.engine.checkpoint import STATE_JSON, STATE_TENSORS

        for name in (STATE_TENSORS, STATE_JSON):
            (ckpt_dir / "last" / name).unlink(missing_ok=True)
        shutil.rmtree(ckpt_dir / "best", ignore_errors=True)
    return result


def _cpu_seconds() -> float:
    import resource

    ru = resource.getrusage(resource.RUSAGE_SELF)
    return ru.ru_utime + ru.ru_stime


# --------------------------------------------------------------------------- the benchmark
def read_jsonl(path: str | Path) -> list[dict]:
    """Records of a results file; a half-written last line (killed run) is skipped."""
    path = Path(path)
    if not path.is_file():
        return []
    records = []
    for line in path.read_text(encoding="utf-8").splitlines():
        if not line.strip():
            continue
        try:
            records.append(json.loads(line))
        except ValueError:
            continue
    return records


def _append(path: Path, record: dict) -> None:
    with open(path, "a", encoding="utf-8") as f:
        f.write(json.dumps(record, default=str) + "\n")
        f.flush()
        os.fsync(f.fileno())


def _record(spec: RunSpec, key: str, preset: Preset, result: dict, **more: Any) -> dict:
    return {"experiment": spec.experiment, "label": spec.label, "kind": spec.kind,
            "model": spec.model, "options": dict(spec.options), "seed": spec.seed,
            **dict(spec.extra), "start": spec.start, "key": key, "preset": preset.name,
            "recipe": preset.recipe(spec.family, spec.start), **result,
            "finished": time.strftime("%Y-%m-%d %H:%M:%S"), **more}


def start_of(r: dict) -> str:
    """A record's start (lines written before starts existed are from scratch)."""
    return r.get("start", "scratch")


def _cell(r: dict) -> tuple:
    return r["experiment"], r["label"], r["kind"], start_of(r), r["seed"], r["key"]


def prepare_data(preset: Preset, kinds: set[str], root: Path, workers: int) -> dict[str, dict]:
    """Generate (or reuse) the synthetic datasets the runs need."""
    from vidcls.data.synthetic import generate

    infos = {}
    for kind in sorted(kinds):
        infos[kind] = generate(root / kind, kind, workers=workers, **preset.data_options())
    return infos


def run_accuracy(preset: str | Preset = "small", out_dir: str | Path | None = None, *,
                 only: list[str] | None = None, seeds: int | None = None,
                 starts: list[str] | tuple[str, ...] | None = None,
                 jobs: int | None = None, keep_checkpoints: bool = False,
                 pretrain_dir: str | Path | None = None, verbose: bool = True) -> Path:
    """Run (or resume) the accuracy benchmark; returns the path of ``results.jsonl``.

    ``jobs`` runs train side by side, each with ``cores // jobs`` threads (default: one run per
    core on CPU, one at a time on a GPU). ``seeds`` limits the preset's seeds to the first N
    (or extends them to 0..N-1). ``starts``: run every selected experiment from each of these
    (default: the preset's starts, :meth:`Preset.starts_of`). The image pretraining of the
    ``pretrained`` start is cached in ``pretrain_dir`` (default ``OUT/pretrain``) under its
    key, so other output directories can share it. Raises ``RuntimeError`` naming the runs
    that failed (the others are recorded).
    """
    p = PRESETS[preset] if isinstance(preset, str) else preset
    if seeds is not None:
        if seeds < 1:
            raise ValueError(f"seeds must be >= 1, got {seeds}")
        p = replace(p, seeds=tuple(range(seeds)) if seeds > len(p.seeds) else p.seeds[:seeds])
    out = Path(out_dir or f"runs/bench/accuracy-{p.name}")
    specs = plan(p, only, starts=check_starts(starts) if starts is not None else None)
    out.mkdir(parents=True, exist_ok=True)
    pre_dir = Path(pretrain_dir) if pretrain_dir else out / "pretrain"
    jsonl = out / "results.jsonl"
    cores = os.cpu_count() or 1
    if jobs is None:
        jobs = 1 if p.device != "cpu" else max(1, cores)
    jobs = max(1, jobs)
    say = print if verbose else (lambda *a, **k: None)

    done = read_jsonl(jsonl)
    have_cells = {_cell(r) for r in done}
    by_key: dict[str, dict] = {}
    for r in done:
        by_key.setdefault(r["key"], r)
    keys = {s: s.key(p) for s in specs}
    todo = [s for s in specs if (s.experiment, s.label, s.kind, s.start, s.seed, keys[s])
            not in have_cells]
    # cells whose run was already done for another table: copy the line
    for s in [s for s in todo if keys[s] in by_key]:
        src = by_key[keys[s]]
        result = {k: v for k, v in src.items() if k in _RESULT_KEYS}
        _append(jsonl, _record(s, keys[s], p, result, reused_from=src["experiment"]))
    todo = [s for s in todo if keys[s] not in by_key]
    first: dict[str, RunSpec] = {}  # run key -> its first cell, in plan order
    for s in todo:
        first.setdefault(keys[s], s)
    say(f"vidcls bench accuracy ({p.name}): {len(specs)} cells, {len(specs) - len(todo)} done, "
        f"{len(first)} runs to train, {min(jobs, max(1, len(first)))} at a time -> {jsonl}",
        flush=True)
    if not first:
        return jsonl

    # image pretraining, once per model family with pretrained runs (cached, resumed)
    families = sorted({s.family for s in first.values() if s.start == "pretrained"})
    weights = {f: pre_dir / f"{pretrain_key(f, p)}.safetensors" for f in families}
    pre_jobs = [f for f in families if not weights[f].is_file()]
    _record_cached_pretraining([f for f in families if f not in pre_jobs], p, pre_dir, jsonl)
    infos = _prepare_all(p, {s.kind for s in first.values()}, out / "data", bool(pre_jobs),
                         cores, say)

    from vidcls.repro.runner import run_jobs

    pool = ([_pretrain_job(f, p, pre_dir, infos) for f in pre_jobs]
            + [_run_job(s, p, out, infos, weights, keep_checkpoints,
                        after=(pretrain_key(s.family, p),)
                        if s.start == "pretrained" and s.family in pre_jobs else ())
               for s in first.values()])
    total, ended, ok, failed = len(pool), 0, 0, []
    t0 = time.perf_counter()

    def on_finish(res) -> None:
        nonlocal ended, ok
        ended += 1
        family = next((f for f in pre_jobs if pretrain_key(f, p) == res.name), None)
        run_dir = res.log.parent
        if family:
            title = f"image pretraining ({family})"
        else:
            spec = first[res.name]
            title = (f"{spec.experiment} {spec.label} on {spec.kind} ({spec.start}), "
                     f"seed {spec.seed}")
        if not res.ok:
            failed.append(family or res.name)
            say(f"  [{ended}/{total}] FAILED {title} (exit {res.returncode}); {res.log}:\n    "
                + "\n    ".join(res.tail(8)), flush=True)
            return
        result = json.loads((run_dir / "result.json").read_text())
        ok += 1
        if family:
            record = _pretrain_record(family, p, res.name, result, run_dir)
            # the line first: the weights file is what marks the pretraining as done
            weights[family].with_suffix(".json").write_text(json.dumps(record, indent=1) + "\n")
            export_pretrained(family, run_dir / "checkpoints" / "last", weights[family])
            _append(jsonl, record)
        else:
            for s in todo:
                if keys[s] == res.name:
                    _append(jsonl, _record(s, res.name, p, result, run_dir=str(run_dir)))
        elapsed = time.perf_counter() - t0
        eta = elapsed / ended * (total - ended)
        pair = "" if family else f" (pair {result['pair_acc']:.0f}%)"
        say(f"  [{ended}/{total}] {title}: top-1 {result['top1']:.1f}%{pair} in "
            f"{result['seconds'] / 60:.1f} min; {elapsed / 60:.0f} min so far, "
            f"~{eta / 60:.0f} min left", flush=True)

    results = run_jobs(pool, parallel=jobs, threads=max(1, cores // jobs), on_finish=on_finish)
    failed += [name for name, r in results.items() if r.skipped]  # their pretraining failed
    say(f"vidcls bench accuracy: {ok} runs in "
        f"{(time.perf_counter() - t0) / 60:.1f} min"
        + (f", {len(failed)} failed (rerun the same command to retry them)" if failed else ""),
        flush=True)
    if failed:
        raise RuntimeError(f"{len(failed)} benchmark run(s) failed: {', '.join(failed)} (logs "
                           f"in {out}/runs/KEY/train.log, {pre_dir}/KEY/train.log)")
    return jsonl


def _pretrain_record(family: str, p: Preset, key: str, result: dict, run_dir: Path) -> dict:
    """The results line of an image pretraining (``experiment: pretrain``)."""
    return {"experiment": "pretrain", "label": family, "kind": "appearance", "seed": 0,
            "start": "pretrained", "key": key, "preset": p.name,
            "recipe": p.pretrain_recipe(family), **result, "run_dir": str(run_dir),
            "finished": time.strftime("%Y-%m-%d %H:%M:%S")}


def _record_cached_pretraining(families: list[str], p: Preset, pre_dir: Path,
                               jsonl: Path) -> None:
    """A pretraining reused from the cache (another output directory made it) still gets its
    line in this results file, so the report can say what the runs started from."""
    have = {r["key"] for r in read_jsonl(jsonl) if r["experiment"] == "pretrain"}
    for f in families:
        meta = (pre_dir / f"{pretrain_key(f, p)}.safetensors").with_suffix(".json")
        if pretrain_key(f, p) not in have and meta.is_file():
            _append(jsonl, json.loads(meta.read_text()))


def _prepare_all(p: Preset, kinds: set[str], root: Path, pretrain: bool, cores: int,
                 say) -> dict[str, dict]:
    """The datasets of the runs (and of the image pretraining when it is still to do)."""
    t0 = time.perf_counter()
    infos = prepare_data(p, kinds, root, workers=max(1, cores))
    if pretrain:
        from vidcls.data.synthetic import generate

        infos["pretrain"] = generate(root / "pretrain", "appearance", workers=max(1, cores),
                                     **p.pretrain_data_options())
    sizes = ", ".join(f"{k} ({i['num_train']} train / {i['num_val']} val videos)"
                      for k, i in infos.items())
    say(f"  data: {sizes} in {time.perf_counter() - t0:.0f}s", flush=True)
    return infos


def _worker_job(name: str, run_dir: Path, cfg, keep: str, after: tuple[str, ...] = ()):
    """The pool job of one training run: its config saved as ``run.yaml``, the worker writing
    ``result.json``, its output in ``train.log``."""
    from vidcls.engine.config import save_config
    from vidcls.repro.runner import Job

    run_dir.mkdir(parents=True, exist_ok=True)
    save_config(cfg, run_dir / "run.yaml")
    cmd = [sys.executable, "-m", "vidcls.repro.accuracy", str(run_dir / "run.yaml"),
           str(run_dir / "result.json"), "--keep", keep]
    return Job(name, cmd, run_dir / "train.log", after=after, output=run_dir / "result.json")


def _pretrain_job(family: str, p: Preset, pre_dir: Path, infos: dict[str, dict]):
    key = pretrain_key(family, p)
    run_dir = pre_dir / key
    cfg = pretrain_config(family, p, Path(infos["pretrain"]["root"]), run_dir)
    return _worker_job(key, run_dir, cfg, keep="model")


def _run_job(spec: RunSpec, p: Preset, out: Path, infos: dict[str, dict],
             weights: dict[str, Path], keep_checkpoints: bool, after: tuple[str, ...]):
    key = spec.key(p)
    run_dir = out / "runs" / key
    cfg = run_config(spec, p, Path(infos[spec.kind]["root"]), run_dir,
                     pretrained=weights[spec.family] if spec.start == "pretrained" else None)
    keep = "all" if keep_checkpoints else "model" if spec.seed == p.seeds[0] else "none"
    return _worker_job(key, run_dir, cfg, keep, after)


_RESULT_KEYS = ("top1", "top5", "mean_class_acc", "pair_acc", "within_pair_acc", "num_val",
                "per_class_acc", "final_train_loss", "final_train_top1", "epochs",
                "train_seconds", "seconds", "params", "gflops", "latency_ms", "threads",
                "cpu_seconds", "run_dir")


def main(argv: list[str] | None = None) -> int:
    """Worker entry point: ``python -m vidcls.repro.accuracy RUN.yaml RESULT.json``."""
    import argparse

    ap = argparse.ArgumentParser(prog="python -m vidcls.repro.accuracy",
                                 description="train + evaluate one benchmark run")
    ap.add_argument("config")
    ap.add_argument("result")
    ap.add_argument("--keep", choices=["none", "model", "all"], default="none")
    args = ap.parse_args(argv)
    run_one(args.config, args.result, keep=args.keep)
    return 0


if __name__ == "__main__":
    sys.exit(main())
