"""Classification metrics from per-video scores: top-k, mean class accuracy, confusion matrix.

Pure tensor functions (no model, no data), so they are tested against hand-computed values and
shared by validation during training, ``vidcls eval`` and the demo; the confusion-matrix
figure is :func:`vidcls.viz.plot_confusion`.
"""
from __future__ import annotations

import csv
import json
from pathlib import Path

import torch


def topk_correct(scores: torch.Tensor, labels: torch.Tensor, k: int) -> torch.Tensor:
    """Bool ``(N,)``: is the true label among the ``k`` highest scores? (k is capped at K)."""
    k = min(k, scores.shape[1])
    top = scores.topk(k, dim=1).indices  # (N, k)
    return (top == labels[:, None]).any(dim=1)


def confusion_matrix(preds: torch.Tensor, labels: torch.Tensor, num_classes: int) -> torch.Tensor:
    """``(K, K)`` counts; row = true class, column = predicted class."""
    flat = labels.long() * num_classes + preds.long()
    return torch.bincount(flat, minlength=num_classes * num_classes).reshape(num_classes,
                                                                            num_classes)


def classification_metrics(scores: torch.Tensor, labels: torch.Tensor,
                           num_classes: int | None = None) -> dict:
    """top1 / top5 / mean class accuracy (in %) and the confusion matrix.

    Mean class accuracy averages the per-class recall over the classes that occur in
    ``labels`` (a class with no test video has no accuracy to average).
    """
    scores = scores.float()
    labels = labels.long()
    k = num_classes or scores.shape[1]
    if scores.shape[0] == 0:
        raise ValueError("no predictions to score (the evaluation set is empty)")
    preds = scores.argmax(dim=1)
    cm = confusion_matrix(preds, labels, k)
    support = cm.sum(dim=1)
    present = support > 0
    per_class = torch.where(present, cm.diag().float() / support.clamp(min=1).float(),
                            torch.zeros(k))
    return {
        "top1": 100.0 * topk_correct(scores, labels, 1).float().mean().item(),
        "top5": 100.0 * topk_correct(scores, labels, 5).float().mean().item(),
        "mean_class_acc": 100.0 * per_class[present].mean().item(),
        "num_videos": int(scores.shape[0]),
        "confusion_matrix": cm,
        "per_class_acc": (100.0 * per_class).tolist(),
    }


def multilabel_metrics(scores: torch.Tensor, targets: torch.Tensor) -> dict:
    """mAP (in %) over classes with at least one positive, for multi-hot targets."""
    aps = []
    for c in range(targets.shape[1]):
        t = targets[:, c] > 0.5
        if not t.any():
            continue
        order = scores[:, c].argsort(descending=True)
        hits = t[order].float()
        precision = hits.cumsum(0) / torch.arange(1, len(hits) + 1)
        aps.append((precision * hits).sum() / hits.sum())
    return {"mAP": 100.0 * torch.stack(aps).mean().item() if aps else 0.0,
            "num_videos": int(scores.shape[0])}


def write_confusion_csv(cm: torch.Tensor, classes: list[str], path: str | Path) -> None:
    with open(path, "w", newline="", encoding="utf-8") as f:
        w = csv.writer(f)
        w.writerow(["true \\ predicted", *classes])
        for name, row in zip(classes, cm.tolist()):
            w.writerow([name, *row])


def write_predictions(rows: list[dict], out_dir: str | Path, stem: str = "predictions") -> None:
    """Per-video predictions as CSV and JSON (``rows``: one dict per video)."""
    out_dir = Path(out_dir)
    with open(out_dir / f"{stem}.json", "w", encoding="utf-8") as f:
        json.dump(rows, f, indent=1)
    if not rows:
        return
    keys = list(rows[0])
    with open(out_dir / f"{stem}.csv", "w", newline="", encoding="utf-8") as f:
        w = csv.DictWriter(f, fieldnames=keys)
        w.writeheader()
        for r in rows:
            w.writerow({k: (json.dumps(v) if isinstance(v, (list, dict)) else v)
                        for k, v in r.items()})
