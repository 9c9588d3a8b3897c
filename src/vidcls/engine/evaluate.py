"""``vidcls eval``: score a checkpoint on a dataset split with multi-view testing.

The checkpoint's own preprocessing (frames, sampling, crop size, mean/std) is used, so a model
is always tested the way it was trained; the config only says where the data is and which test
views to use (``eval.num_clips`` x ``eval.num_crops``, or ``eval.twice``). Per-view softmax
probabilities are averaged per video. Under ``torchrun`` every process scores a shard and the
results are gathered, so the metrics equal a single-process run.

Writes into ``out_dir``: ``metrics.json``, ``confusion_matrix.csv`` / ``.png`` and
``predictions.csv`` / ``.json`` (one row per video: path, true and predicted class, top-5).
"""
from __future__ import annotations

import json
from pathlib import Path

import torch
from torch.utils.data import DataLoader

from vidcls.data.dataset import collate_clips
from vidcls.engine import builders
from vidcls.engine import checkpoint as ckpt
from vidcls.engine.config import Config, ConfigError
from vidcls.engine.distributed import (ShardedSampler, cleanup_distributed, init_distributed)
from vidcls.engine.metrics import write_confusion_csv, write_predictions
from vidcls.engine.inference import run_inference, score_inference
from vidcls.engine.runtime import resolve_device
from vidcls.viz import plot_confusion


def evaluate(cfg: Config, checkpoint: str | Path, *, split: str = "val",
             out_dir: str | Path | None = None, num_clips: int | None = None,
             num_crops: int | None = None, twice: bool | None = None,
             batch_size: int | None = None, progress: bool = True) -> dict:
    """Evaluate ``checkpoint`` on ``split`` of the dataset in ``cfg``; returns the metrics."""
    probe = resolve_device(cfg.device)
    info = init_distributed(probe.type)
    try:
        device = resolve_device(cfg.device, info.local_rank)
        model, meta = ckpt.load_model(checkpoint, device=device)
        prep = model.preprocessing  # the checkpoint's card (engine.checkpoint.read_preprocessing)
        classes = list(meta["classes"])
        records, data_classes = builders.read_split(cfg, split)
        if len(data_classes) != len(classes):
            raise ConfigError(f"the {split} annotations have {len(data_classes)} classes but the "
                              f"checkpoint was trained on {len(classes)}; evaluate on the same "
                              f"class list")
        e = cfg.eval
        num_clips = num_clips or e.num_clips
        num_crops = num_crops or e.num_crops
        twice = e.twice if twice is None else twice
        dataset = builders.build_eval_dataset(cfg, records, classes, prep, num_clips=num_clips,
                                              num_crops=num_crops, twice=twice)
        sampler = ShardedSampler(len(dataset), num_replicas=info.world_size, rank=info.rank,
                                 shuffle=False)
        bs = batch_size or e.batch_size or cfg.data.batch_size
        loader = DataLoader(dataset, batch_size=bs, sampler=sampler,
                            num_workers=cfg.data.workers, collate_fn=collate_clips,
                            generator=torch.Generator().manual_seed(0))
        mean = torch.tensor(prep.mean, dtype=torch.float32, device=device)
        std = torch.tensor(prep.std, dtype=torch.float32, device=device)
        result = run_inference(model, loader, device=device, mean=mean, std=std,
                               precision="fp32" if cfg.train.precision == "fp16" and
                               device.type != "cuda" else cfg.train.precision,
                               dist_info=info, progress=progress, desc=f"eval {split}")
        metrics = score_inference(result, len(classes))
        views = (2 if twice else num_clips) * num_crops
        metrics.update(split=split, checkpoint=str(ckpt.resolve_checkpoint_dir(checkpoint)),
                       num_clips=2 if twice else num_clips, num_crops=num_crops, views=views,
                       bad_files=result["bad"])
        out = Path(out_dir) if out_dir else Path(cfg.output_dir) / f"eval_{split}"
        if info.is_main:
            _write_outputs(out, metrics, result, dataset, classes)
            metrics["output_dir"] = str(out)
        metrics.pop("confusion_matrix", None)
        return metrics
    finally:
        cleanup_distributed()


def _write_outputs(out: Path, metrics: dict, result: dict, dataset, classes: list[str]) -> None:
    out.mkdir(parents=True, exist_ok=True)
    scores, labels, index = result["scores"], result["labels"], result["index"]
    rows = []
    if not (labels.is_floating_point() and labels.dim() == 2):
        probs = scores if result["probs"] else scores.float().softmax(dim=1)
        k = min(5, probs.shape[1])
        top_p, top_i = probs.topk(k, dim=1)
        for i in range(len(index)):
            rec = dataset.records[int(index[i])]
            pred = int(top_i[i, 0])
            rows.append({"index": int(index[i]), "video": rec.path, "label": int(labels[i]),
                         "label_name": classes[int(labels[i])], "pred": pred,
                         "pred_name": classes[pred], "prob": round(float(top_p[i, 0]), 6),
                         "correct": pred == int(labels[i]),
                         "top5": [classes[int(j)] for j in top_i[i]],
                         "top5_prob": [round(float(p), 6) for p in top_p[i]]})
        write_predictions(rows, out)
    cm = metrics.get("confusion_matrix")
    if cm is not None:
        write_confusion_csv(cm, classes, out / "confusion_matrix.csv")
        plot_confusion(cm, classes, out / "confusion_matrix.png",
                       title=f"{metrics['split']}: top-1 {metrics['top1']:.1f}%")
    public = {k: v for k, v in metrics.items() if k != "confusion_matrix"}
    (out / "metrics.json").write_text(json.dumps(public, indent=2) + "\n")


def format_metrics(m: dict) -> str:
    if "mAP" in m:
        return f"mAP {m['mAP']:.2f} on {m['num_videos']} videos"
    lines = [f"{m['split']}: {m['num_videos']} videos, {m['num_clips']} clip(s) x "
             f"{m['num_crops']} crop(s)",
             f"  top-1            {m['top1']:6.2f}",
             f"  top-5            {m['top5']:6.2f}",
             f"  mean class acc.  {m['mean_class_acc']:6.2f}",
             f"  loss             {m['loss']:.4f}"]
    if m.get("bad_files"):
        lines.append(f"  {len(m['bad_files'])} unreadable file(s) replaced (see metrics.json)")
    if m.get("output_dir"):
        lines.append(f"  written to {m['output_dir']}/ (metrics.json, predictions.csv, "
                     f"confusion_matrix.csv/.png)")
    return "\n".join(lines)

