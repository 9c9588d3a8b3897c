"""``vidcls eval``: score a checkpoint on a dataset split with multi-view testing.

The checkpoint's own preprocessing (frames, sampling, crop size, mean/std) is used, so a model
is always tested the way it was trained; the config only says where the data is and which test
views to use (``eval.num_clips`` x ``eval.num_crops``, or ``eval.twice``). Per-view softmax
probabilities are averaged per video. Under ``torchrun`` every process scores a shard and the
results are gathered, so the metrics equal a single-process run.

Writes into ``out_dir``: ``metrics.json``, ``confusion_matrix.csv`` / ``.png`` and
``predictions.csv`` / ``.json`` (one row per video: path, true and predicted class, top-5).
A video that cannot be read is not scored: it is left out of the metrics and predictions,
counted as ``skipped`` and listed in ``bad_files.txt`` (and ``metrics.json``).
Multi-label checkpoints (``meta["multi_label"]``) are scored by mAP, and their predictions
carry independent sigmoid probabilities (the classes above 0.5 are predicted).
"""
from __future__ import annotations

import json
from pathlib import Path

import torch
from torch.utils.data import DataLoader

from vidcls.data.bad_files import BadFileReport, NoUsableVideos
from vidcls.data.dataset import collate_clips
from vidcls.engine import builders
from vidcls.engine import checkpoint as ckpt
from vidcls.engine.config import Config, ConfigError
from vidcls.engine.distributed import (ShardedSampler, cleanup_distributed, init_distributed)
from vidcls.engine.metrics import write_confusion_csv, write_predictions
from vidcls.engine.inference import prepare_for_inference, run_inference, score_inference, to_probabilities
from vidcls.engine.runtime import resolve_device
from vidcls.viz import plot_confusion


def evaluate(cfg: Config, checkpoint: str | Path, *, split: str = "val",
             out_dir: str | Path | None = None, num_clips: int | None = None,
             num_crops: int | None = None, twice: bool | None = None,
             batch_size: int | None = None, progress: bool = True,
             precision: str = "auto") -> dict:
    """Evaluate ``checkpoint`` on ``split`` of the dataset in ``cfg``; returns the metrics.

    ``precision``: ``auto`` (bf16 where the device computes it natively, else fp32), ``fp32``,
    ``bf16`` or ``fp16`` (CUDA); CNNs run ``channels_last``. The metrics record which."""
    probe = resolve_device(cfg.device)
    info = init_distributed(probe.type)
    try:
        device = resolve_device(cfg.device, info.local_rank)
        model, meta = ckpt.load_model(checkpoint, device=device)
        precision = prepare_for_inference(model, device, precision, fold_batchnorm=True)
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
                                              num_crops=num_crops, twice=twice,
                                              multi_label=meta.get("multi_label"),
                                              source=builders.split_source(cfg, split))
        sampler = ShardedSampler(len(dataset), num_replicas=info.world_size, rank=info.rank,
                                 shuffle=False)
        bs = batch_size or e.batch_size or cfg.data.batch_size
        loader = DataLoader(dataset, batch_size=bs, sampler=sampler,
                            num_workers=cfg.data.workers, collate_fn=collate_clips,
                            generator=torch.Generator().manual_seed(0))
        mean = torch.tensor(prep.mean, dtype=torch.float32, device=device)
        std = torch.tensor(prep.std, dtype=torch.float32, device=device)
        out = Path(out_dir) if out_dir else Path(cfg.output_dir) / f"eval_{split}"
        try:
            result = run_inference(model, loader, device=device, mean=mean, std=std,
                                   precision=precision,
                                   dist_info=info, progress=progress, desc=f"eval {split}",
                                   multi_label=dataset.multi_label)
        except NoUsableVideos as err:
            if not info.is_main:
                raise
            out.mkdir(parents=True, exist_ok=True)
            BadFileReport().update(err.bad).write(out / "bad_files.txt")
            raise err.with_report(out / "bad_files.txt") from None
        metrics = score_inference(result, len(classes))
        views = (2 if twice else num_clips) * num_crops
        metrics.update(split=split, checkpoint=str(ckpt.resolve_checkpoint_dir(checkpoint)),
                       num_clips=2 if twice else num_clips, num_crops=num_crops, views=views,
                       multi_label=dataset.multi_label, bad_files=result["bad"],
                       precision=precision)
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
    multi_label = labels.is_floating_point() and labels.dim() == 2
    probs = to_probabilities(scores, probs=result["probs"], multi_label=multi_label)
    k = min(5, probs.shape[1])
    top_p, top_i = probs.topk(k, dim=1)
    rows = []
    for i in range(len(index)):
        rec = dataset.records[int(index[i])]
        top = {"top5": [classes[int(j)] for j in top_i[i]],
               "top5_prob": [round(float(p), 6) for p in top_p[i]]}
        if multi_label:  # independent classes: every class above 0.5 is predicted
            rows.append({"index": int(index[i]), "video": rec.path,
                         "labels": [classes[j] for j in labels[i].nonzero().flatten().tolist()],
                         "pred": [classes[j] for j in (probs[i] >= 0.5).nonzero().flatten()
                                  .tolist()], **top})
            continue
        pred = int(top_i[i, 0])
        rows.append({"index": int(index[i]), "video": rec.path, "label": int(labels[i]),
                     "label_name": classes[int(labels[i])], "pred": pred,
                     "pred_name": classes[pred], "prob": round(float(top_p[i, 0]), 6),
                     "correct": pred == int(labels[i]), **top})
    write_predictions(rows, out)
    if metrics.get("bad_files"):
        BadFileReport().update(metrics["bad_files"]).write(out / "bad_files.txt")
    elif (out / "bad_files.txt").exists():  # from an earlier evaluation into this folder
        (out / "bad_files.txt").unlink()
    cm = metrics.get("confusion_matrix")
    if cm is not None:
        write_confusion_csv(cm, classes, out / "confusion_matrix.csv")
        plot_confusion(cm, classes, out / "confusion_matrix.png",
                       title=f"{metrics['split']}: top-1 {metrics['top1']:.1f}%")
    public = {k: v for k, v in metrics.items() if k != "confusion_matrix"}
    (out / "metrics.json").write_text(json.dumps(public, indent=2) + "\n")


def format_metrics(m: dict) -> str:
    """What ``vidcls eval`` prints: the metrics, then the unreadable files it skipped."""
    skipped = f"   (skipped: {m['skipped']})" if m.get("skipped") else ""
    lines = [f"{m['split']}: {m['num_videos']} videos, {m['num_clips']} clip(s) x "
             f"{m['num_crops']} crop(s)" + (", multi-label" if "mAP" in m else "")]
    if "mAP" in m:
        lines.append(f"  mAP              {m['mAP']:6.2f}{skipped}")
    else:
        lines += [f"  top-1            {m['top1']:6.2f}{skipped}",
                  f"  top-5            {m['top5']:6.2f}",
                  f"  mean class acc.  {m['mean_class_acc']:6.2f}"]
    lines.append(f"  loss             {m['loss']:.4f}")
    bad = m.get("bad_files") or []
    if bad:
        lines.append(f"  skipped: {m.get('skipped', len(bad))} unreadable video(s), not scored "
                     f"(bad_files.txt):")
        lines += [f"    {b}" for b in bad[:20]]
        if len(bad) > 20:
            lines.append(f"    ... and {len(bad) - 20} more")
    if m.get("output_dir"):
        figure = "" if "mAP" in m else ", confusion_matrix.csv/.png"
        lines.append(f"  written to {m['output_dir']}/ (metrics.json, predictions.csv{figure})")
    return "\n".join(lines)

