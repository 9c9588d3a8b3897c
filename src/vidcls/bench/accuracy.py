"""``vidcls bench accuracy``: the papers' accuracy patterns, reproduced at small scale.

Four experiments, each trained on the built-in synthetic datasets (:mod:`vidcls.data.synthetic`)
with one recipe per model family, so every model of a table gets the same data and budget:

``table1``     the TSM paper's Table 1 pattern: TSN vs TSM on ``appearance`` (TSM ~ TSN) and on
               ``temporal`` (TSM >> TSN; TSN at chance *within* each pair of time-reversed
               classes).
``shift``      the shift-proportion figure: in-place vs residual shift, 1/8, 1/4, 1/2 and all
               channels moved (``shift_div`` 16, 8, 4, 2) on ``temporal``, TSN as proportion 0.
``online``     uni-directional (online, streamable) vs bi-directional (offline) shift on
               ``temporal``.
``attention``  TimeSformer's attention table: ``space``, ``joint``, ``divided``, ``local_global``,
               ``axial`` on ``appearance`` and ``temporal``.

Every (experiment, model, seed) cell is one line of ``results.jsonl`` in the output directory,
written as soon as its run ends, so an interrupted benchmark resumes where it stopped (an
interrupted *training* continues from its last epoch checkpoint). A run whose configuration is
identical to one already done for another experiment (e.g. the default TSM is in ``table1``,
``shift`` and ``online``) is not trained again: its line is copied with ``reused_from``.

Each run is a ``vidcls train``-style :func:`vidcls.engine.trainer.fit` followed by
:func:`vidcls.engine.evaluate.evaluate` (1 clip x 1 centre crop) in its own process, several
processes side by side with one thread each (small convolutions run better that way, see
``vidcls.demo.train_side_by_side``). Once a run is scored its training state is deleted; the
weights of the first seed's runs stay (for ``vidcls explain`` and the report), all checkpoints
with ``keep_checkpoints``. Config, logs, metrics and predictions always stay.
"""
from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

EXPERIMENTS = ("table1", "shift", "online", "attention")
ATTENTIONS = ("space", "joint", "divided", "local_global", "axial")
SHIFT_DIVS = (16, 8, 4, 2)  # 1/8, 1/4, 1/2, all of the channels moved (both directions together)
SHIFT_PLACES = ("inplace", "residual")


@dataclass(frozen=True)
class Preset:
    """Data size, models and training recipe of one benchmark scale.

    The training recipe is the demo's (AdamW, cosine, multi-scale crop, no flip). ``vit`` holds
    the TimeSformer architecture: a tiny ViT, since ViT-B is far beyond a CPU budget.

    With ``pretrain=True`` every video model starts, like in the papers (ImageNet
    initialisation), from an *image* model of its family pretrained once on frames of a
    separate synthetic image task: ``appearance`` videos of all 8 shapes drawn with another seed
    (``pretrain_*`` fields). The ``small`` preset trains from scratch instead: on 2 CPU cores the
    pretraining that fits the hour stayed near chance (measured with shape-only classes, before
    ``appearance`` classes got their colour families: ResNet-18 24 %, ViT 14 % on 8 shapes) and
    only took time from the experiments.
    """

    name: str
    num_classes: int = 4             # 2 pairs of time-reversed classes on ``temporal``
    videos_per_class: int = 40
    val_fraction: float = 0.2
    video_frames: int = 16           # frames in each synthetic video file
    size: int = 32                   # video width = height = crop size (pixels)
    num_frames: int = 8              # frames sampled per clip (T)
    seeds: tuple[int, ...] = (0, 1, 2)
    backbone: str = "resnet18"
    batch_size: int = 8
    weight_decay: float = 0.05
    cnn_epochs: int = 8
    cnn_lr: float = 0.002
    vit_epochs: int = 12
    vit_lr: float = 0.001
    vit: dict = field(default_factory=lambda: dict(img_size=32, patch_size=8, embed_dim=64,
                                                   depth=4, num_heads=4, drop_path_rate=0.0))
    max_steps_per_epoch: int | None = None
    device: str = "cpu"
    data_seed: int = 0
    # image pretraining
    pretrain: bool = False
    pretrain_classes: int = 8
    pretrain_videos_per_class: int = 200
    pretrain_batch_size: int = 32
    cnn_pretrain_epochs: int = 12
    cnn_pretrain_lr: float = 0.002
    vit_pretrain_epochs: int = 12
    vit_pretrain_lr: float = 0.001
    pretrain_max_steps_per_epoch: int | None = None
    pretrain_val_fraction: float = 0.1
    # frames per pretraining clip: a TSN of 1 frame is a plain image CNN; the ViT takes 8
    # frames, which its ``space`` attention treats as 8 images (cls tokens averaged), because
    # decoding a video costs more than running the tiny ViT on one frame
    cnn_pretrain_frames: int = 1
    vit_pretrain_frames: int = 8

    def recipe(self, family: str) -> dict:
        """Everything about training that a run's result depends on (part of its key)."""
        epochs, lr = ((self.cnn_epochs, self.cnn_lr) if family == "cnn"
                      else (self.vit_epochs, self.vit_lr))
        out = dict(epochs=epochs, lr=lr, batch_size=self.batch_size,
                   weight_decay=self.weight_decay, num_frames=self.num_frames,
                   max_steps_per_epoch=self.max_steps_per_epoch, data=self.data_options())
        if self.pretrain:
            out["pretrain"] = self.pretrain_recipe(family)
        return out

    def pretrain_recipe(self, family: str) -> dict:
        epochs, lr = ((self.cnn_pretrain_epochs, self.cnn_pretrain_lr) if family == "cnn"
                      else (self.vit_pretrain_epochs, self.vit_pretrain_lr))
        arch = {"model": f"tsn_{self.backbone}"} if family == "cnn" else {
            "model": "timesformer_base", **self.vit}
        frames = self.cnn_pretrain_frames if family == "cnn" else self.vit_pretrain_frames
        out = dict(epochs=epochs, lr=lr, batch_size=self.pretrain_batch_size,
                   weight_decay=self.weight_decay, arch=arch,
                   max_steps_per_epoch=self.pretrain_max_steps_per_epoch,
                   data=self.pretrain_data_options())
        if frames != 1:  # (keeps the key of 1-frame recipes unchanged)
            out["num_frames"] = frames
        return out

    def data_options(self) -> dict:
        return dict(num_classes=self.num_classes, videos_per_class=self.videos_per_class,
                    num_frames=self.video_frames, size=self.size, seed=self.data_seed,
                    val_fraction=self.val_fraction)

    def pretrain_data_options(self) -> dict:
        return dict(num_classes=self.pretrain_classes,
                    videos_per_class=self.pretrain_videos_per_class,
                    num_frames=self.video_frames, size=self.size, seed=self.data_seed + 1000,
                    val_fraction=self.pretrain_val_fraction)


PRESETS: dict[str, Preset] = {
    # Tests and smoke checks: a handful of videos, one optimizer step per stage.
    "toy": Preset("toy", videos_per_class=4, val_fraction=0.25, video_frames=8, num_frames=4,
                  backbone="mobilenetv2",
                  seeds=(0,), cnn_epochs=1, vit_epochs=1, max_steps_per_epoch=1, batch_size=4,
                  vit=dict(img_size=32, patch_size=16, embed_dim=16, depth=1, num_heads=2,
                           drop_path_rate=0.0),
                  pretrain_videos_per_class=2, pretrain_batch_size=4, cnn_pretrain_epochs=1,
                  vit_pretrain_epochs=1, pretrain_max_steps_per_epoch=1,
                  pretrain_val_fraction=0.5, pretrain=True),
    # 2 CPU cores, under an hour: ResNet-18 TSN/TSM and a 4-block TimeSformer on 32x32 clips,
    # from scratch.
    "small": Preset("small"),
    # A GPU: more classes and videos, 64x64 clips, ResNet-50, a wider TimeSformer, 5 seeds.
    "full": Preset("full", num_classes=8, videos_per_class=300, size=64, seeds=(0, 1, 2, 3, 4),
                   backbone="resnet50", batch_size=16, cnn_epochs=10, vit_epochs=30,
                   device="auto", pretrain=True,
                   vit=dict(img_size=64, patch_size=8, embed_dim=192, depth=6, num_heads=3,
                            drop_path_rate=0.1),
                   pretrain_videos_per_class=1000, pretrain_batch_size=128,
                   cnn_pretrain_epochs=30, vit_pretrain_epochs=150),
}


@dataclass(frozen=True)
class RunSpec:
    """One cell of one experiment's table: a model on a dataset kind with one seed."""

    experiment: str
    label: str                      # row label in the table, e.g. "TSM", "residual 1/4"
    kind: str                       # synthetic dataset kind
    model: str                      # create_model name
    options: tuple                  # architecture options as sorted (key, value) pairs
    seed: int
    extra: tuple = ()               # plot coordinates etc., e.g. (("shift_fraction", 0.25),)

    @property
    def family(self) -> str:
        return "vit" if self.model.startswith("timesformer") else "cnn"

    def key(self, preset: Preset) -> str:
        """Identity of the training run: equal keys = the same run (shared across tables)."""
        from vidcls.data.synthetic import VERSION

        blob = json.dumps(dict(kind=self.kind, model=self.model, options=list(self.options),
                               seed=self.seed, recipe=preset.recipe(self.family),
                               synth_version=VERSION),
                          sort_keys=True, default=str)
        return hashlib.sha1(blob.encode()).hexdigest()[:12]


def _spec(experiment: str, label: str, kind: str, model: str, options: dict, seed: int,
          **extra: Any) -> RunSpec:
    return RunSpec(experiment, label, kind, model, tuple(sorted(options.items())), seed,
                   tuple(sorted(extra.items())))


def plan(preset: Preset, only: list[str] | None = None,
         seeds: tuple[int, ...] | None = None) -> list[RunSpec]:
    """All runs of the selected experiments, seed-major (every table gets its first seed
    before any table gets its second, so a stopped run still has one of everything)."""
    only = list(only or EXPERIMENTS)
    bad = [e for e in only if e not in EXPERIMENTS]
    if bad:
        raise ValueError(f"unknown experiment(s) {', '.join(bad)}; choose from "
                         f"{', '.join(EXPERIMENTS)}")
    tsn, tsm = f"tsn_{preset.backbone}", f"tsm_{preset.backbone}"
    default_shift = dict(shift_div=8, shift_place="residual", shift_mode="bidirectional")
    specs: list[RunSpec] = []
    for seed in seeds or preset.seeds:
        if "table1" in only:
            for kind in ("appearance", "temporal"):
                specs.append(_spec("table1", "TSN", kind, tsn, {}, seed))
                specs.append(_spec("table1", "TSM", kind, tsm, default_shift, seed))
        if "online" in only:
            specs.append(_spec("online", "TSN (no shift)", "temporal", tsn, {}, seed))
            specs.append(_spec("online", "offline (bi-directional)", "temporal", tsm,
                               default_shift, seed))
            specs.append(_spec("online", "online (uni-directional)", "temporal", tsm,
                               {**default_shift, "shift_mode": "unidirectional"}, seed))
        if "shift" in only:
            specs.append(_spec("shift", "TSN (no shift)", "temporal", tsn, {}, seed,
                               shift_fraction=0.0, place="none"))
            for place in SHIFT_PLACES:
                for div in SHIFT_DIVS:
                    frac = 2 / div
                    specs.append(_spec("shift", f"{place} {_fraction_name(frac)}", "temporal",
                                       tsm, {**default_shift, "shift_div": div,
                                             "shift_place": place}, seed,
                                       shift_fraction=frac, place=place))
        if "attention" in only:
            for kind in ("appearance", "temporal"):
                for att in ATTENTIONS:
                    specs.append(_spec("attention", att, kind, "timesformer_base",
                                       {**preset.vit, "attention": att}, seed))
    return specs


def _fraction_name(frac: float) -> str:
    return "all" if frac >= 1 else f"1/{round(1 / frac)}"


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
    r = preset.recipe(spec.family)
    model = {"name": spec.model, "dropout": 0.0, **dict(spec.options)}
    if pretrained is not None:
        model["pretrained"] = str(pretrained)
    # no flip: it would turn "moving right" into "moving left"
    return _train_config(model=model, data_root=data_root, num_frames=preset.num_frames,
                         batch_size=preset.batch_size, size=preset.size, epochs=r["epochs"],
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


def pretrain_key(family: str, preset: Preset) -> str:
    blob = json.dumps(preset.pretrain_recipe(family), sort_keys=True, default=str)
    return f"pretrain-{family}-" + hashlib.sha1(blob.encode()).hexdigest()[:8]


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
    times = []
    with torch.inference_mode():
        model(x)  # warm-up
        for _ in range(repeats):
            t = time.perf_counter()
            model(x)
            times.append(time.perf_counter() - t)
    return {"gflops": flops / 2e9, "latency_ms": 1000 * sorted(times)[len(times) // 2]}


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
        "params": sum(p.numel() for p in model.parameters()), **cost,
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
            **dict(spec.extra), "key": key, "preset": preset.name,
            "recipe": preset.recipe(spec.family), **result,
            "finished": time.strftime("%Y-%m-%d %H:%M:%S"), **more}


def _cell(r: dict) -> tuple:
    return r["experiment"], r["label"], r["kind"], r["seed"], r["key"]


def prepare_data(preset: Preset, kinds: set[str], root: Path, workers: int) -> dict[str, dict]:
    """Generate (or reuse) the synthetic datasets the runs need."""
    from vidcls.data.synthetic import generate

    infos = {}
    for kind in sorted(kinds):
        infos[kind] = generate(root / kind, kind, workers=workers, **preset.data_options())
    return infos


def _interrupt(signum, frame):
    raise KeyboardInterrupt(f"signal {signum}")


def _on_sigterm(handler):
    """Install ``handler`` for SIGTERM (main thread only); returns the previous one."""
    import signal
    import threading

    if handler is None or threading.current_thread() is not threading.main_thread():
        return None
    return signal.signal(signal.SIGTERM, handler)


def run_accuracy(preset: str | Preset = "small", out_dir: str | Path | None = None, *,
                 only: list[str] | None = None, seeds: int | None = None,
                 jobs: int | None = None, keep_checkpoints: bool = False,
                 verbose: bool = True) -> Path:
    """Run (or resume) the accuracy benchmark; returns the path of ``results.jsonl``.

    ``jobs`` runs train side by side, each with ``cores // jobs`` threads (default: one run per
    core on CPU, one at a time on a GPU). ``seeds`` limits the preset's seeds to the first N.
    """
    p = PRESETS[preset] if isinstance(preset, str) else preset
    if seeds is not None:
        if seeds < 1:
            raise ValueError(f"seeds must be >= 1, got {seeds}")
        p = replace(p, seeds=tuple(range(seeds)) if seeds > len(p.seeds) else p.seeds[:seeds])
    out = Path(out_dir or f"runs/bench/accuracy-{p.name}")
    out.mkdir(parents=True, exist_ok=True)
    jsonl = out / "results.jsonl"
    specs = plan(p, only)
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
    todo = [s for s in specs if (s.experiment, s.label, s.kind, s.seed, keys[s]) not in
            have_cells]
    # cells whose run was already done for another table: copy the line
    for s in [s for s in todo if keys[s] in by_key]:
        src = by_key[keys[s]]
        result = {k: v for k, v in src.items() if k in _RESULT_KEYS}
        _append(jsonl, _record(s, keys[s], p, result, reused_from=src["experiment"]))
    todo = [s for s in todo if keys[s] not in by_key]
    pending: list[str] = []
    for s in todo:
        if keys[s] not in pending:
            pending.append(keys[s])
    first = {k: next(s for s in todo if keys[s] == k) for k in pending}
    say(f"vidcls bench accuracy ({p.name}): {len(specs)} cells, {len(specs) - len(todo)} done, "
        f"{len(pending)} runs to train, {min(jobs, max(1, len(pending)))} at a time -> {jsonl}",
        flush=True)
    if not pending:
        return jsonl

    # image pretraining, once per model family (resumed like the rest)
    families = sorted({first[k].family for k in pending}) if p.pretrain else []
    weights = {f: out / "pretrain" / f"{pretrain_key(f, p)}.safetensors" for f in families}
    pre_jobs = [f for f in families if not weights[f].is_file()]

    t0 = time.perf_counter()
    infos = prepare_data(p, {first[k].kind for k in pending}, out / "data",
                         workers=max(1, cores))
    if pre_jobs:
        from vidcls.data.synthetic import generate

        infos["pretrain"] = generate(out / "data" / "pretrain", "appearance",
                                     workers=max(1, cores), **p.pretrain_data_options())
    sizes = ", ".join(f"{k} ({i['num_train']} train / {i['num_val']} val videos)"
                      for k, i in infos.items())
    say(f"  data: {sizes} in {time.perf_counter() - t0:.0f}s", flush=True)

    from vidcls.engine.config import save_config

    def launch(item: tuple[str, str]) -> subprocess.Popen:
        what, key = item
        if what == "pretrain":
            run_dir = out / "pretrain" / pretrain_key(key, p)
            cfg = pretrain_config(key, p, Path(infos["pretrain"]["root"]), run_dir)
            keep = "model"
        else:
            spec = first[key]
            run_dir = out / "runs" / key
            cfg = run_config(spec, p, Path(infos[spec.kind]["root"]), run_dir,
                             pretrained=weights.get(spec.family))
            keep = ("all" if keep_checkpoints else
                    "model" if spec.seed == p.seeds[0] else "none")
        run_dir.mkdir(parents=True, exist_ok=True)
        save_config(cfg, run_dir / "run.yaml")
        (run_dir / "result.json").unlink(missing_ok=True)
        cmd = [sys.executable, "-m", "vidcls.bench.accuracy", str(run_dir / "run.yaml"),
               str(run_dir / "result.json"), "--keep", keep]
        with open(run_dir / "train.log", "a") as log:
            return subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, env=env)

    def ready(item: tuple[str, str]) -> bool:
        family = first[item[1]].family if item[0] == "run" else None
        return family not in weights or weights[family].is_file()

    threads = max(1, cores // jobs)
    env = {**os.environ, "OMP_NUM_THREADS": str(threads), "MKL_NUM_THREADS": str(threads)}
    running: dict[tuple[str, str], subprocess.Popen] = {}
    total = len(pending) + len(pre_jobs)
    finished, failed, ok = 0, [], 0
    start = time.perf_counter()
    queue = [("pretrain", f) for f in pre_jobs] + [("run", k) for k in pending]
    # SIGTERM (kill, a job scheduler) must also stop the workers: make it an exception
    previous = _on_sigterm(_interrupt)
    try:
        while queue or running:
            while len(running) < jobs and any(ready(it) for it in queue):
                item = next(it for it in queue if ready(it))
                queue.remove(item)
                running[item] = launch(item)
            if not running and queue:  # a pretraining failed: its runs cannot start
                failed += [k for _, k in queue]
                break
            time.sleep(0.2)
            for item in [it for it, proc in running.items() if proc.poll() is not None]:
                proc = running.pop(item)
                finished += 1
                what, key = item
                if what == "pretrain":
                    run_dir = out / "pretrain" / pretrain_key(key, p)
                    title = f"image pretraining ({key})"
                else:
                    run_dir = out / "runs" / key
                    spec = first[key]
                    title = f"{spec.experiment} {spec.label} on {spec.kind}, seed {spec.seed}"
                if proc.returncode != 0 or not (run_dir / "result.json").is_file():
                    tail = (run_dir / "train.log").read_text(errors="replace").splitlines()[-8:]
                    failed.append(key)
                    if what == "pretrain":  # its family's runs cannot start
                        dropped = [it for it in queue if it[0] == "run" and
                                   first[it[1]].family == key]
                        queue = [it for it in queue if it not in dropped]
                        failed += [k for _, k in dropped]
                    say(f"  [{finished}/{total}] FAILED {title} (exit {proc.returncode}); "
                        f"{run_dir / 'train.log'}:\n    " + "\n    ".join(tail), flush=True)
                    continue
                result = json.loads((run_dir / "result.json").read_text())
                ok += 1
                if what == "pretrain":
                    export_pretrained(key, run_dir / "checkpoints" / "last", weights[key])
                    _append(jsonl, {"experiment": "pretrain", "label": key,
                                    "kind": "appearance", "seed": 0,
                                    "key": pretrain_key(key, p), "preset": p.name,
                                    "recipe": p.pretrain_recipe(key), **result,
                                    "run_dir": str(run_dir),
                                    "finished": time.strftime("%Y-%m-%d %H:%M:%S")})
                else:
                    for s in todo:
                        if keys[s] == key:
                            _append(jsonl, _record(s, key, p, result, run_dir=str(run_dir)))
                elapsed = time.perf_counter() - start
                eta = elapsed / finished * (total - finished)
                pair = f" (pair {result['pair_acc']:.0f}%)" if what == "run" else ""
                say(f"  [{finished}/{total}] {title}: top-1 {result['top1']:.1f}%{pair} in "
                    f"{result['seconds'] / 60:.1f} min; {elapsed / 60:.0f} min so far, "
                    f"~{eta / 60:.0f} min left", flush=True)
    finally:
        _on_sigterm(previous)
        for proc in running.values():  # interrupted: stop our own workers (they checkpoint)
            proc.terminate()
        for proc in running.values():
            try:
                proc.wait(timeout=60)
            except subprocess.TimeoutExpired:
                proc.kill()
    say(f"vidcls bench accuracy: {ok} runs in "
        f"{(time.perf_counter() - start) / 60:.1f} min"
        + (f", {len(failed)} failed (rerun the same command to retry them)" if failed else ""),
        flush=True)
    if failed:
        raise RuntimeError(f"{len(failed)} benchmark run(s) failed: {', '.join(failed)} (logs "
                           f"in {out}/runs/KEY/train.log)")
    return jsonl


_RESULT_KEYS = ("top1", "top5", "mean_class_acc", "pair_acc", "within_pair_acc", "num_val",
                "per_class_acc", "final_train_loss", "final_train_top1", "epochs",
                "train_seconds", "seconds", "params", "gflops", "latency_ms", "threads",
                "cpu_seconds", "run_dir")


def main(argv: list[str] | None = None) -> int:
    """Worker entry point: ``python -m vidcls.bench.accuracy RUN.yaml RESULT.json``."""
    import argparse

    ap = argparse.ArgumentParser(prog="python -m vidcls.bench.accuracy",
                                 description="train + evaluate one benchmark run")
    ap.add_argument("config")
    ap.add_argument("result")
    ap.add_argument("--keep", choices=["none", "model", "all"], default="none")
    args = ap.parse_args(argv)
    run_one(args.config, args.result, keep=args.keep)
    return 0


if __name__ == "__main__":
    sys.exit(main())
