"""Scoring a model over a data loader: the shared half of validation and ``vidcls eval``.

A batch's ``clip`` is uint8 ``(B, T, 3, H, W)`` (one view per video) or ``(B, V, T, 3, H, W)``
(multi-clip x multi-crop testing). It is moved to the device as uint8 (4x fewer bytes than
floats) and normalised there by ``vidcls.data.transforms.normalize``, the one normaliser.
With several views the per-view softmax probabilities are averaged (``average_views``), so the
scores of a multi-view run are probabilities, those of a one-view run logits;
``run_inference`` says which in ``"probs"``.
"""
from __future__ import annotations

import torch
from torch import nn
from torch.utils.data import DataLoader

from vidcls.data.transforms import normalize
from vidcls.engine.distributed import DistInfo, all_gather_cat, all_gather_strings
from vidcls.engine.metrics import classification_metrics, multilabel_metrics
from vidcls.engine.runtime import autocast_context, progress_bar


def average_views(logits: torch.Tensor) -> torch.Tensor:
    """Per-view logits ``(B, V, K)`` -> per-video probabilities ``(B, K)``.

    The mean of the views' softmax probabilities (mmaction2's ``average_clips='prob'``): a
    view the model is unsure about weighs less than with averaged raw logits.
    """
    if logits.dim() != 3:
        raise ValueError(f"average_views expects logits (B, V, K), got {tuple(logits.shape)}; "
                         f"add the views axis with logits.unsqueeze(1)")
    return logits.float().softmax(dim=-1).mean(dim=1)  # (B, K)


def forward_views(model: nn.Module, x: torch.Tensor) -> torch.Tensor:
    """Scores for a batch with or without a views axis.

    ``x`` is ``(B, T, 3, H, W)`` -> logits ``(B, K)``, or ``(B, V, T, 3, H, W)`` -> softmax
    probabilities averaged over the ``V`` views ``(B, K)``.
    """
    if x.dim() == 5:
        return model(x)
    b, v = x.shape[:2]
    logits = model(x.flatten(0, 1))  # (B*V, T, 3, H, W) -> (B*V, K)
    return average_views(logits.view(b, v, -1))  # (B, V, K) -> (B, K)


@torch.no_grad()
def run_inference(model: nn.Module, loader: DataLoader, *, device: torch.device,
                  mean: torch.Tensor, std: torch.Tensor, precision: str = "fp32",
                  dist_info: DistInfo | None = None, progress: bool = False,
                  desc: str = "eval") -> dict:
    """Scores of every video in ``loader.dataset``, gathered from all processes.

    Returns ``{"index": (N,), "scores": (N, K), "labels": (N,) or (N, K), "probs": bool,
    "bad": [...]}`` ordered by dataset index, each video once (sampler padding removed);
    ``probs`` is True when the scores are averaged probabilities rather than logits.
    """
    dist_info = dist_info or DistInfo()
    model.eval()
    idx_parts, score_parts, label_parts, bad = [], [], [], []
    multi_view = False
    bar = progress_bar(total=len(loader), desc=desc, enabled=progress and dist_info.is_main)
    for batch in loader:
        clip = batch["clip"].to(device, non_blocking=True)
        multi_view = clip.dim() == 6
        x = normalize(clip, mean, std)
        with autocast_context(device, precision):
            scores = forward_views(model, x)
        score_parts.append(scores.float().cpu())
        idx_parts.append(torch.as_tensor(batch["index"]).long())
        label_parts.append(torch.as_tensor(batch["label"]))
        bad.extend(batch.get("bad") or [])
        if bar is not None:
            bar.update(1)
    if bar is not None:
        bar.close()
    index = torch.cat(idx_parts)
    scores = torch.cat(score_parts)
    labels = torch.cat(label_parts)
    if dist_info.enabled:
        index = all_gather_cat(index, dist_info)
        scores = all_gather_cat(scores, dist_info)
        labels = all_gather_cat(labels, dist_info)
        bad = all_gather_strings(bad, dist_info)
    order = torch.argsort(index, stable=True)
    index, scores, labels = index[order], scores[order], labels[order]
    keep = torch.ones(len(index), dtype=torch.bool)
    keep[1:] = index[1:] != index[:-1]  # drop the sampler's wrap-around padding
    return {"index": index[keep], "scores": scores[keep], "labels": labels[keep],
            "probs": multi_view, "bad": sorted(set(bad))}


def score_inference(result: dict, num_classes: int) -> dict:
    """Metrics (and loss) for ``run_inference``'s output."""
    scores, labels = result["scores"], result["labels"]
    if labels.is_floating_point() and labels.dim() == 2:
        return multilabel_metrics(scores, labels)
    metrics = classification_metrics(scores, labels, num_classes)
    if result["probs"]:
        loss = nn.functional.nll_loss(scores.clamp_min(1e-12).log(), labels)
    else:
        loss = nn.functional.cross_entropy(scores, labels)
    metrics["loss"] = loss.item()
    return metrics


__all__ = ["average_views", "forward_views", "run_inference", "score_inference"]
