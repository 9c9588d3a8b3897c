"""Scoring a model over a data loader: the shared half of validation and ``vidcls eval``.

A batch's ``clip`` is uint8 ``(B, T, 3, H, W)`` (one view per video) or ``(B, V, T, 3, H, W)``
(multi-clip x multi-crop testing). It is moved to the device as uint8 (4x fewer bytes than
floats) and normalised there by ``vidcls.data.transforms.normalize``, the one normaliser.
With several views the per-view softmax probabilities are averaged (``average_views``), so the
scores of a multi-view run are probabilities, those of a one-view run logits;
``run_inference`` says which in ``"probs"``. Multi-label models (independent classes, trained
with BCE) average sigmoid probabilities instead (``multi_label=True``).

Videos the dataset could not read arrive as ``skipped`` indices (``collate_clips``): they are
reported, never scored; when nothing at all was readable, ``run_inference`` raises
``NoUsableVideos``.
"""
from __future__ import annotations

import torch
from torch import nn
from torch.utils.data import DataLoader

from vidcls.data.bad_files import NoUsableVideos
from vidcls.data.transforms import normalize
from vidcls.models.fuse import fold_batchnorm as fold_bn
from vidcls.engine.distributed import (DistInfo, all_gather_cat, all_gather_strings,
                                       all_reduce_sum)
from vidcls.engine.metrics import classification_metrics, multilabel_metrics
from vidcls.engine.runtime import autocast_context, progress_bar, resolve_precision


def average_views(logits: torch.Tensor, *, multi_label: bool = False) -> torch.Tensor:
    """Per-view logits ``(B, V, K)`` -> per-video probabilities ``(B, K)``.

    The mean of the views' softmax probabilities (mmaction2's ``average_clips='prob'``): a
    view the model is unsure about weighs less than with averaged raw logits. Multi-label:
    the mean of the sigmoid probabilities (each class on its own).
    """
    if logits.dim() != 3:
        raise ValueError(f"average_views expects logits (B, V, K), got {tuple(logits.shape)}; "
                         f"add the views axis with logits.unsqueeze(1)")
    probs = logits.float().sigmoid() if multi_label else logits.float().softmax(dim=-1)
    return probs.mean(dim=1)  # (B, K)


def prepare_for_inference(model: nn.Module, device: torch.device, precision: str = "auto",
                          *, fold_batchnorm: bool = False) -> str:
    """Put ``model`` in its fastest correct inference form on ``device``: eval mode, and
    ``channels_last`` weights for the CNNs (TSN/TSM: every conv then runs NHWC, 1.2-1.4x on a
    CPU; the shift keeps the format); returns the precision to autocast with (``auto`` resolved:
    bf16 where ``device`` computes it natively, else fp32). Same answers as the plain fp32 NCHW
    path: logits within float tolerance for the layout, the same top-1 for bf16 (tested).

    ``fold_batchnorm``: also fold every batch norm into the convolution before it
    (:func:`vidcls.models.fuse.fold_batchnorm`; 1.06-1.15x). The model can no longer be
    trained afterwards, so only callers that loaded the model themselves ask for it.
    """
    model.to(device).eval()
    is_cnn = getattr(model, "backbone", None) is not None and any(
        isinstance(m, nn.Conv2d) for m in model.backbone.modules())
    if is_cnn and fold_batchnorm:
        fold_bn(model)  # before the layout change: the folded weights are new tensors
    if is_cnn:
        model.to(memory_format=torch.channels_last)
    return resolve_precision(precision, device)


def forward_views(model: nn.Module, x: torch.Tensor, *, multi_label: bool = False
                  ) -> torch.Tensor:
    """Scores for a batch with or without a views axis.

    ``x`` is ``(B, T, 3, H, W)`` -> logits ``(B, K)``, or ``(B, V, T, 3, H, W)`` -> softmax
    (multi-label: sigmoid) probabilities averaged over the ``V`` views ``(B, K)``.
    """
    if x.dim() == 5:
        return model(x)
    b, v = x.shape[:2]
    logits = model(x.flatten(0, 1))  # (B*V, T, 3, H, W) -> (B*V, K)
    return average_views(logits.view(b, v, -1), multi_label=multi_label)  # (B, V, K) -> (B, K)


def to_probabilities(scores: torch.Tensor, *, probs: bool, multi_label: bool = False
                     ) -> torch.Tensor:
    """``run_inference`` scores as probabilities: softmax of logits (multi-label: sigmoid);
    already averaged probabilities (``probs``) pass through."""
    if probs:
        return scores.float()
    return scores.float().sigmoid() if multi_label else scores.float().softmax(dim=1)


@torch.no_grad()
def run_inference(model: nn.Module, loader: DataLoader, *, device: torch.device,
                  mean: torch.Tensor, std: torch.Tensor, precision: str = "fp32",
                  dist_info: DistInfo | None = None, progress: bool = False,
                  desc: str = "eval", multi_label: bool = False) -> dict:
    """Scores of every readable video in ``loader.dataset``, gathered from all processes.

    Returns ``{"index": (N,), "scores": (N, K), "labels": (N,) or (N, K), "probs": bool,
    "bad": [...], "skipped": [...]}`` ordered by dataset index, each video once (sampler
    padding removed); ``probs`` is True when the scores are averaged probabilities rather than
    logits; ``skipped`` lists the dataset indices that could not be read (not in ``index``).
    Raises ``NoUsableVideos`` when no video could be read.
    """
    dist_info = dist_info or DistInfo()
    model.eval()
    dataset = getattr(loader, "dataset", None)
    idx_parts, score_parts, label_parts = [], [], []
    bad: list[str] = []
    skipped: list[int] = []
    multi_view = False
    bar = progress_bar(total=len(loader), desc=desc, enabled=progress and dist_info.is_main)
    for batch in loader:
        bad.extend(batch.get("bad") or [])
        skipped.extend(batch.get("skipped") or [])
        if bar is not None:
            bar.update(1)
        if batch["clip"] is None:  # every video of this batch was unreadable
            continue
        clip = batch["clip"].to(device, non_blocking=True)
        multi_view = clip.dim() == 6
        x = normalize(clip, mean, std)
        with autocast_context(device, precision):
            scores = forward_views(model, x, multi_label=multi_label)
        score_parts.append(scores.float().cpu())
        idx_parts.append(torch.as_tensor(batch["index"]).long())
        label_parts.append(torch.as_tensor(batch["label"]))
    if bar is not None:
        bar.close()
    if idx_parts:
        index, scores, labels = torch.cat(idx_parts), torch.cat(score_parts), \
            torch.cat(label_parts)
    else:  # no readable video in this process: empty parts of the right shapes
        k = len(getattr(dataset, "classes", ()))
        index, scores = torch.zeros(0, dtype=torch.long), torch.zeros(0, k)
        labels = (torch.zeros(0, k) if getattr(dataset, "multi_label", multi_label)
                  else torch.zeros(0, dtype=torch.long))
    if dist_info.enabled:
        index = all_gather_cat(index, dist_info)
        scores = all_gather_cat(scores, dist_info)
        labels = all_gather_cat(labels, dist_info)
        bad = all_gather_strings(bad, dist_info)
        skipped = [int(i) for i in all_gather_strings([str(i) for i in skipped], dist_info)]
        multi_view = bool(all_reduce_sum(torch.tensor([float(multi_view)]), dist_info).item())
    if len(index) == 0:
        raise NoUsableVideos(getattr(dataset, "source", "the dataset"), sorted(set(bad)),
                             getattr(dataset, "num_files", len(set(skipped))))
    order = torch.argsort(index, stable=True)
    index, scores, labels = index[order], scores[order], labels[order]
    keep = torch.ones(len(index), dtype=torch.bool)
    keep[1:] = index[1:] != index[:-1]  # drop the sampler's wrap-around padding
    return {"index": index[keep], "scores": scores[keep], "labels": labels[keep],
            "probs": multi_view, "bad": sorted(set(bad)), "skipped": sorted(set(skipped))}


def score_inference(result: dict, num_classes: int) -> dict:
    """Metrics (and loss) for ``run_inference``'s output; ``skipped``: the unreadable videos
    left out of them."""
    scores, labels = result["scores"], result["labels"]
    skipped = len(result.get("skipped", []))
    if labels.is_floating_point() and labels.dim() == 2:  # multi-hot: independent classes
        metrics = multilabel_metrics(scores, labels)
        if result["probs"]:
            loss = nn.functional.binary_cross_entropy(scores.clamp(1e-7, 1 - 1e-7), labels)
        else:
            loss = nn.functional.binary_cross_entropy_with_logits(scores, labels)
        return {**metrics, "loss": loss.item(), "skipped": skipped}
    metrics = classification_metrics(scores, labels, num_classes)
    if result["probs"]:
        loss = nn.functional.nll_loss(scores.clamp_min(1e-12).log(), labels)
    else:
        loss = nn.functional.cross_entropy(scores, labels)
    metrics["loss"] = loss.item()
    metrics["skipped"] = skipped
    return metrics


__all__ = ["prepare_for_inference", "average_views", "forward_views", "to_probabilities", "run_inference",
           "score_inference"]
