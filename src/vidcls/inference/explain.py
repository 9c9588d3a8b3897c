"""``vidcls explain``: where in the clip did the model look?

Two methods, one per model family, both giving a heat map per sampled frame:

* **TimeSformer — attention rollout** (Abnar & Zuidema, 2020). Every attention stage of every
  block (for ``divided``: the temporal stage, then the spatial one; for ``axial``: time, width,
  height; ...) is turned into a token-to-token matrix in the model's token order (cls first,
  then patches in (frame, row, column) order), heads averaged, the residual connection
  accounted for as ``0.5 * I + 0.5 * A``. Multiplying them from the last stage back to the
  first gives how much each input patch contributes to the final cls token. The model computes
  attention with SDPA, which does not return the probabilities, so forward hooks on each
  :class:`vidcls.models.attention.Attention` capture its input and recompute the probabilities
  with the module's own :meth:`~vidcls.models.attention.Attention.probs` (the same qkv split as
  its forward); a stage's token groups are recovered by running its
  :class:`~vidcls.models.attention.Partition` on a grid of token ids.
* **TSN / TSM — Grad-CAM** (Selvaraju et al., 2017) on the last convolutional stage, per frame:
  the feature maps weighted by the spatially averaged gradient of the class score, ReLU. On tiny
  clips (32 pixels) the last ResNet stage is a single cell, so the last stage with a map of at
  least 7x7 cells (``layer4``'s grid at 224 pixels) is used instead: ``layer1`` there.

Outputs of :func:`explain_video`: ``explain.png`` (a grid: the sampled frames on top, the
overlays below), ``explain.mp4`` (frame | overlay side by side) and ``explain.json`` (predicted
classes, the explained class, the method). The clip is the one the model sees: sampled and
cropped by the checkpoint's model card (through :class:`vidcls.inference.predict.Predictor`).
Images and overlays are drawn by :mod:`vidcls.viz`, the video written by
:mod:`vidcls.data.writer`.
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from vidcls.data.writer import write_video
from vidcls.inference.predict import Predictor
from vidcls.viz import overlay_heatmaps, save_grid_png, upscale_nearest

__all__ = ["Explanation", "attention_rollout", "grad_cam", "explain_clip", "explain_video",
           "attention_probs", "token_groups", "conv_stages", "object_focus", "normalize_maps"]


# --------------------------------------------------------------------------- attention rollout
def attention_probs(attn: nn.Module, x: Tensor, attn_mask: Tensor | None = None) -> Tensor:
    """The attention probabilities of :class:`~vidcls.models.attention.Attention` on ``x``:
    ``(S, heads, L, L)``, rows summing to 1 (``attn.probs``, the module's own computation).

    x: ``(S, L, D)`` (the module's input); ``attn_mask``: bool, True = may attend, broadcasting
    to ``(S, heads, L, L)``.
    """
    return attn.probs(x, attn_mask)


def token_groups(partition, num_frames: int, grid: tuple[int, int], *, with_cls: bool) -> Tensor:
    """Token ids of every group of an attention stage: ``(G, L)`` long.

    Ids follow ``forward_features``' order: 0 = cls, ``1 + t*N + n`` = patch ``n`` of frame
    ``t``; -1 marks padding. The grouping is the partition's own ``split`` applied to a grid of
    ids, so it cannot drift from what the model does. With ``with_cls`` the cls id is put first
    in every group (the model prepends cls to each group of the last stage).
    """
    h, w = grid
    n = h * w
    ids = torch.arange(1, 1 + num_frames * n, dtype=torch.float64).view(1, num_frames, n, 1)
    groups, mask = partition.split(ids, grid)  # (1, G, L, 1), (G, L) or None
    groups = groups[0, :, :, 0].round().long()  # (G, L)
    if mask is not None:
        groups[~mask] = -1
    if with_cls:
        groups = torch.cat([groups.new_zeros(groups.shape[0], 1), groups], dim=1)  # (G, 1 + L)
    return groups


class _AttentionRecorder:
    """Forward hooks on every attention stage of a TimeSformer; records head-averaged attention
    probabilities in execution order."""

    def __init__(self, model: nn.Module):
        self.records: list[dict] = []
        self.handles = []
        for i, blk in enumerate(model.blocks):
            stages = [(p, part, False) for p, part in blk.stages] + [
                ("", blk.last_partition, True)]
            for prefix, partition, with_cls in stages:
                module = getattr(blk, f"{prefix}_attn" if prefix else "attn")
                self.handles.append(module.register_forward_hook(
                    self._hook(i, prefix or "attn", partition, with_cls), with_kwargs=True))

    def _hook(self, block: int, stage: str, partition, with_cls: bool):
        def hook(module, args, kwargs, output):
            x = args[0]
            mask = kwargs.get("attn_mask", args[1] if len(args) > 1 else None)
            probs = module.probs(x, mask).mean(dim=1)  # (S, L, L): heads averaged
            self.records.append(dict(block=block, stage=stage, partition=partition,
                                     with_cls=with_cls, probs=probs))
        return hook

    def remove(self) -> None:
        for h in self.handles:
            h.remove()


def _rollout(records: list[dict], batch: int, num_frames: int, grid: tuple[int, int]
             ) -> Tensor:
    """cls row of ``R = A_last @ ... @ A_first`` with ``A = 0.5 I + 0.5 P`` per stage.

    Computed as a row vector propagated from the last stage back to the first (``v <- v A``), so
    no ``(1+TN) x (1+TN)`` matrix is ever built. Returns ``(batch, 1 + T*N)``; entries sum to 1.
    """
    n_tokens = 1 + num_frames * grid[0] * grid[1]
    v = torch.zeros(batch, n_tokens, dtype=torch.float64)
    v[:, 0] = 1.0
    for rec in reversed(records):
        ids = token_groups(rec["partition"], num_frames, grid, with_cls=rec["with_cls"])
        G, L = ids.shape
        P = rec["probs"].double().reshape(batch, G, L, L)  # (B, G, L, L)
        valid = ids >= 0  # (G, L)
        safe = ids.clamp(min=0)
        vg = v[:, safe] * valid  # (B, G, L): the rows' weights, in group layout
        if rec["with_cls"]:
            # the cls row of this stage is the mean over groups of each group's cls row
            vg[:, :, 0] = v[:, :1] / G
        u = torch.einsum("bgi,bgij->bgj", vg, P) * valid  # (B, G, L)
        new = torch.zeros_like(v)
        new.scatter_add_(1, safe.reshape(1, -1).expand(batch, -1), u.reshape(batch, -1))
        if not rec["with_cls"]:
            new[:, 0] += v[:, 0]  # cls takes no part in this stage: identity row
        v = 0.5 * v + 0.5 * new  # residual connection
    return v


@torch.no_grad()
def attention_rollout(model: nn.Module, x: Tensor) -> tuple[Tensor, Tensor]:
    """Attention rollout of a TimeSformer on clips ``x (B, T, 3, H, W)``.

    Returns ``(relevance (B, T, h, w), logits (B, K))``: each patch's share of the final cls
    token (non-negative; together with the cls token's own share they sum to 1 per clip).
    """
    if not hasattr(model, "blocks") or not hasattr(model, "patch_size"):
        raise ValueError(f"attention rollout needs a TimeSformer, got {type(model).__name__} "
                         f"(use grad_cam for TSN/TSM)")
    B, T, _, H, W = x.shape
    grid = (H // model.patch_size, W // model.patch_size)
    rec = _AttentionRecorder(model)
    try:
        logits = model(x)
    finally:
        rec.remove()
    space = getattr(model, "attention", None) == "space"
    # "space" runs every frame as its own 1-frame clip with its own cls token; the final cls is
    # their mean, so each frame's rollout gets the same weight 1/T.
    batch, frames = (B * T, 1) if space else (B, T)
    v = _rollout(rec.records, batch, frames, grid)  # (batch, 1 + frames*N)
    relevance = v[:, 1:].reshape(B, T, *grid)
    if space:
        relevance = relevance / T
    return relevance.float(), logits


# --------------------------------------------------------------------------- Grad-CAM
def conv_stages(model: nn.Module) -> list[tuple[str, nn.Module]]:
    """The convolutional stages of a TSN/TSM backbone, input to output: ResNet ``layer1..4``,
    MobileNetV2 ``features.0..18``."""
    backbone = getattr(model, "backbone", None)
    if backbone is None:
        raise ValueError(f"Grad-CAM needs a TSN/TSM model with a CNN backbone, got "
                         f"{type(model).__name__} (use attention_rollout for TimeSformer)")
    if hasattr(backbone, "layer4"):
        return [(f"layer{i}", getattr(backbone, f"layer{i}")) for i in range(1, 5)]
    if hasattr(backbone, "features"):
        return [(f"features.{i}", m) for i, m in enumerate(backbone.features)]
    raise ValueError(f"don't know the conv stages of backbone {type(backbone).__name__}")


def grad_cam(model: nn.Module, x: Tensor, target: Tensor | int | None = None, *,
             layer: str | None = None, min_grid: int = 7) -> tuple[Tensor, Tensor]:
    """Grad-CAM of a TSN/TSM model on clips ``x (B, T, 3, H, W)``.

    ``target``: class index (int or ``(B,)``); default the predicted class. ``layer``: stage
    name (``"layer4"``, ``"features.18"``); default the *last* stage whose map is at least
    ``min_grid`` cells wide: ``layer4`` (7x7) at 224 pixels, but ``layer1`` (8x8) on 32-pixel
    clips, where ``layer4`` is a single cell and its map says nothing about *where*.
    Returns ``(cam (B, T, h, w) >= 0, logits (B, K))`` (frames repeated when the model pools
    time). Also returns the stage used as ``grad_cam.last_layer``.
    """
    stages = conv_stages(model)
    names = [n for n, _ in stages]
    if layer is not None and layer not in names:
        raise ValueError(f"unknown layer {layer!r}; choose one of {', '.join(names)}")
    store: dict[str, Tensor] = {}
    handles = [m.register_forward_hook(
        lambda mod, args, out, n=n: store.__setitem__(n, out)) for n, m in stages]
    try:
        with torch.enable_grad():
            logits = model(x)  # (B, K)
            if layer is None:
                wide = [n for n in names if min(store[n].shape[-2:]) >= min_grid]
                layer = wide[-1] if wide else names[0]
            if target is None:
                target = logits.argmax(dim=1)
            target = torch.as_tensor(target, device=logits.device).long().reshape(-1)
            target = target.expand(logits.shape[0]) if target.numel() == 1 else target
            score = logits.gather(1, target[:, None]).sum()
            act = store[layer]  # (B*T', C, h, w)
            grads = torch.autograd.grad(score, act)[0]  # (B*T', C, h, w)
    finally:
        for h in handles:
            h.remove()
    grad_cam.last_layer = layer
    weights = grads.mean(dim=(2, 3), keepdim=True)  # (B*T', C, 1, 1)
    cam = F.relu((weights * act).sum(dim=1)).detach()  # (B*T', h, w)
    B, T = x.shape[:2]
    cam = cam.reshape(B, -1, *cam.shape[-2:])  # (B, T', h, w)
    if cam.shape[1] != T:  # temporal pooling: one map per pair of frames
        cam = cam.repeat_interleave(T // cam.shape[1], dim=1)  # (B, T, h, w)
    return cam, logits.detach()


def object_focus(clip: Tensor, maps: Tensor, threshold: float = 60.0) -> float | None:
    """How much a heat map concentrates on the moving object of a static-background clip.

    clip: uint8 ``(T, 3, H, W)``; maps: ``(T, h, w)`` >= 0. The object is where a pixel differs
    from its median over time by more than ``threshold`` (sum over RGB) -- right for the
    synthetic datasets, whose background never moves. Returns (share of the heat on object
    pixels) / (share of the pixels that are object): 1 = no preference, higher = the object
    lights up. None when there is no moving object or no heat.
    """
    f = clip.float()
    obj = (f - f.median(dim=0).values).abs().sum(dim=1) > threshold  # (T, H, W)
    heat = F.interpolate(maps.float()[:, None], size=clip.shape[-2:], mode="bilinear",
                         align_corners=False)[:, 0].clamp(min=0)  # (T, H, W)
    if not obj.any() or heat.sum() <= 0:
        return None
    return float((heat * obj).sum() / heat.sum()) / float(obj.float().mean())


# --------------------------------------------------------------------------- rendering
# (colorize, overlay_heatmaps and the PNG grid are vidcls.viz's image helpers)
def normalize_maps(maps: Tensor) -> Tensor:
    """Scale a clip's maps ``(T, h, w)`` jointly to [0, 1] (joint: frames stay comparable)."""
    lo, hi = maps.min(), maps.max()
    return (maps - lo) / (hi - lo) if hi > lo else torch.zeros_like(maps)


# --------------------------------------------------------------------------- high level
@dataclass
class Explanation:
    """Heat maps of one clip: ``maps (T, h, w)`` raw, ``heat (T, h, w)`` scaled to [0, 1]."""

    method: str
    target: int
    probs: Tensor  # (K,)
    maps: Tensor
    heat: Tensor
    layer: str = ""


def _method_for(model: nn.Module, method: str) -> str:
    is_vit = hasattr(model, "blocks") and hasattr(model, "patch_size")
    if method == "auto":
        return "rollout" if is_vit else "gradcam"
    if method not in ("rollout", "gradcam"):
        raise ValueError(f"unknown method {method!r}; use auto, rollout or gradcam")
    if method == "rollout" and not is_vit:
        raise ValueError("attention rollout needs a TimeSformer; use --method gradcam for "
                         "TSN/TSM")
    if method == "gradcam" and is_vit:
        raise ValueError("Grad-CAM here works on CNN backbones; use --method rollout for "
                         "TimeSformer")
    return method


def explain_clip(model: nn.Module, x: Tensor, *, target: int | None = None,
                 method: str = "auto", multi_label: bool = False) -> Explanation:
    """Explain one normalised clip ``x (T, 3, H, W)``; ``multi_label``: the classes are
    independent (sigmoid probabilities, as predict gives them)."""
    method = _method_for(model, method)
    model.eval()
    if method == "rollout":
        maps, logits = attention_rollout(model, x[None])
        # rollout explains the cls token, which serves every class alike
        layer = "all attention stages"
    else:
        maps, logits = grad_cam(model, x[None], target)
        layer = grad_cam.last_layer
    probs = logits[0].float().sigmoid() if multi_label else logits[0].float().softmax(-1)
    target = int(probs.argmax()) if target is None else int(target)
    maps = maps[0].float()  # (T, h, w)
    return Explanation(method=method, target=target, probs=probs, maps=maps,
                       heat=normalize_maps(maps), layer=layer)


def _resolve_target(target: str | int | None, classes: list[str]) -> int | None:
    if target is None:
        return None
    if isinstance(target, str) and not target.lstrip("-").isdigit():
        if target not in classes:
            raise ValueError(f"class {target!r} is not one of the checkpoint's classes: "
                             f"{', '.join(classes[:20])}{' ...' if len(classes) > 20 else ''}")
        return classes.index(target)
    index = int(target)
    if not 0 <= index < len(classes):
        raise ValueError(f"class index {index} is outside 0..{len(classes) - 1}")
    return index


def explain_video(video: str | Path, checkpoint: str | Path, output: str | Path, *,
                  target: str | int | None = None, method: str = "auto", alpha: float = 0.5,
                  fps: int = 4, min_size: int = 224) -> dict:
    """Explain a video file with a checkpoint; writes ``explain.png``, ``explain.mp4`` and
    ``explain.json`` into the directory ``output`` and returns the JSON record.

    The clip is sampled and cropped exactly as the checkpoint's preprocessing says (the frames
    the model sees); images are upscaled (nearest) to at least ``min_size`` pixels so tiny
    clips stay visible.
    """
    pred = Predictor(checkpoint)
    target_index = _resolve_target(target, pred.classes)
    clip, x = pred.load_clip(video)  # uint8 and normalised (T, 3, H, W)
    ex = explain_clip(pred.model, x, target=target_index, method=method,
                      multi_label=pred.multi_label)
    frames = clip.permute(0, 2, 3, 1).numpy()  # (T, H, W, 3)
    overlays = overlay_heatmaps(frames, ex.heat, alpha=alpha)
    factor = max(1, -(-min_size // min(frames.shape[1:3])))
    big_frames, big_overlays = upscale_nearest(frames, factor), upscale_nearest(overlays, factor)

    out = Path(output)
    out.mkdir(parents=True, exist_ok=True)
    top = ex.probs.topk(min(3, ex.probs.numel()))
    top_list = [{"label": pred.classes[int(i)], "index": int(i), "probability": float(p)}
                for p, i in zip(top.values, top.indices)]
    name = {"rollout": "attention rollout", "gradcam": f"Grad-CAM ({ex.layer})"}[ex.method]
    explained = pred.classes[ex.target]
    title = (f"{Path(video).name}: predicted {top_list[0]['label']} "
             f"({100 * top_list[0]['probability']:.0f}%) | {name}"
             + (f" for '{explained}'" if ex.method == "gradcam" else " (cls token)"))
    save_grid_png(out / "explain.png", big_frames, big_overlays, title)
    side = np.concatenate([big_frames, big_overlays], axis=2)  # (T, H', 2W', 3)
    side = side[:, : side.shape[1] // 2 * 2, : side.shape[2] // 2 * 2]  # even sizes for H.264
    write_video(out / "explain.mp4", np.ascontiguousarray(side), fps=fps)
    record = {"video": str(video), "checkpoint": str(checkpoint), "method": ex.method,
              "explained_class": explained, "explained_index": ex.target, "layer": ex.layer,
              "predictions": top_list, "frames": int(frames.shape[0]),
              "map_size": list(ex.maps.shape[1:]),
              "outputs": [str(out / f) for f in ("explain.png", "explain.mp4")]}
    (out / "explain.json").write_text(json.dumps(record, indent=2) + "\n")
    return record
