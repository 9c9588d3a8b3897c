"""Figures and image overlays: the one place vidcls talks to matplotlib.

Layer 0: imports no other vidcls module, so evaluation (confusion matrices), ``vidcls explain``
(heat-map grids), the demo (training curves) and the benchmark report (plots) all draw through
the same bootstrap and the same saving rule.

* :func:`pyplot` / :func:`require_pyplot` -- ``matplotlib.pyplot`` on the file-only ``Agg``
  backend (no display needed). matplotlib is an optional dependency: the first returns None
  without it (callers then skip a figure and say so with ``False``), the second raises an
  ``ImportError`` that says what to install (for the report, whose plots are the point).
* :func:`save_figure` -- tight layout, PNG, and the figure closed (pyplot keeps open ones).
* pure numpy image helpers for heat maps over frames, which need no matplotlib:
  :func:`colorize`, :func:`overlay_heatmaps`, :func:`upscale_nearest`, :func:`grid_image`,
  :func:`write_png` (PyAV, a core dependency) and :func:`save_grid_png` (titled with matplotlib
  when it is installed, plain otherwise).
* the figures of one concept each: :func:`plot_confusion`, :func:`plot_curves`.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

__all__ = ["pyplot", "require_pyplot", "save_figure", "colorize", "overlay_heatmaps",
           "upscale_nearest", "grid_image", "write_png", "save_grid_png", "plot_confusion",
           "plot_curves"]


# --------------------------------------------------------------------------- matplotlib
def pyplot() -> Any | None:
    """``matplotlib.pyplot`` on the ``Agg`` backend, or None when matplotlib is missing."""
    try:
        import matplotlib
    except ImportError:
        return None
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def require_pyplot(what: str = "this figure") -> Any:
    """:func:`pyplot`, or an ``ImportError`` naming the missing package and the fix."""
    plt = pyplot()
    if plt is None:
        raise ImportError(f"{what} needs matplotlib, which is not installed "
                          f"(pip install matplotlib)")
    return plt


def save_figure(fig, path: str | Path, dpi: int = 110) -> None:
    """Tight layout, PNG at ``dpi``, figure closed (matplotlib keeps every open figure alive)."""
    fig.tight_layout()
    fig.savefig(path, dpi=dpi)
    pyplot().close(fig)


# --------------------------------------------------------------------------- heat-map images
def colorize(heat: np.ndarray) -> np.ndarray:
    """Values in [0, 1] -> RGB floats in [0, 1] on a 'jet'-like blue-cyan-yellow-red scale
    (no matplotlib needed)."""
    h = np.clip(np.asarray(heat, dtype=np.float32), 0.0, 1.0)[..., None]
    r = np.clip(1.5 - np.abs(4 * h - 3), 0, 1)
    g = np.clip(1.5 - np.abs(4 * h - 2), 0, 1)
    b = np.clip(1.5 - np.abs(4 * h - 1), 0, 1)
    return np.concatenate([r, g, b], axis=-1)  # (..., 3)


def overlay_heatmaps(frames: np.ndarray, heat, alpha: float = 0.5) -> np.ndarray:
    """Blend heat maps over frames.

    frames: uint8 ``(T, H, W, 3)``; heat: ``(T, h, w)`` in [0, 1], a tensor or an array
    (upsampled bilinearly to ``H x W``). Returns uint8 ``(T, H, W, 3)``.
    """
    import torch
    import torch.nn.functional as F

    T, H, W, _ = frames.shape
    heat = torch.as_tensor(np.asarray(heat), dtype=torch.float32)
    if heat.shape[0] != T:
        raise ValueError(f"{heat.shape[0]} heat maps for {T} frames; give one map per frame")
    up = F.interpolate(heat[:, None], size=(H, W), mode="bilinear", align_corners=False)
    up = up[:, 0].clamp(0, 1).numpy()  # (T, H, W)
    blend = (1 - alpha) * frames.astype(np.float32) / 255.0 + alpha * colorize(up)
    return np.clip(blend * 255.0 + 0.5, 0, 255).astype(np.uint8)


def upscale_nearest(images: np.ndarray, factor: int) -> np.ndarray:
    """Nearest-neighbour upscaling of uint8 ``(..., H, W, 3)`` (tiny clips become visible)."""
    return images.repeat(factor, axis=-3).repeat(factor, axis=-2) if factor > 1 else images


def grid_image(frames: np.ndarray, overlays: np.ndarray, pad: int = 2) -> np.ndarray:
    """Two rows (frames, overlays) x T columns, white padding: uint8 ``(2H+3p, T(W+p)+p, 3)``."""
    T, H, W, _ = frames.shape
    out = np.full((2 * H + 3 * pad, T * (W + pad) + pad, 3), 255, dtype=np.uint8)
    for t in range(T):
        x0 = pad + t * (W + pad)
        out[pad:pad + H, x0:x0 + W] = frames[t]
        out[2 * pad + H:2 * pad + 2 * H, x0:x0 + W] = overlays[t]
    return out


def write_png(path: str | Path, image: np.ndarray) -> None:
    """Write uint8 ``(H, W, 3)`` as PNG with PyAV (a core dependency: works without
    matplotlib)."""
    import av

    with av.open(str(path), "w", format="image2") as out:
        stream = out.add_stream("png", rate=1)
        stream.width, stream.height = image.shape[1], image.shape[0]
        stream.pix_fmt = "rgb24"
        for packet in stream.encode(av.VideoFrame.from_ndarray(np.ascontiguousarray(image),
                                                               format="rgb24")):
            out.mux(packet)
        for packet in stream.encode():
            out.mux(packet)


def save_grid_png(path: str | Path, frames: np.ndarray, overlays: np.ndarray,
                  title: str = "") -> None:
    """The frames-over-overlays grid as PNG, with a title and row labels when matplotlib is
    installed (the plain :func:`grid_image` otherwise)."""
    plt = pyplot()
    if plt is None:
        write_png(path, grid_image(frames, overlays))
        return
    T = frames.shape[0]
    fig, axes = plt.subplots(2, T, figsize=(1.6 * T + 0.6, 3.6), squeeze=False)
    for t in range(T):
        for row, images in enumerate((frames, overlays)):
            ax = axes[row, t]
            ax.imshow(images[t], interpolation="nearest")
            ax.set_xticks([])
            ax.set_yticks([])
            if row == 0:
                ax.set_title(f"frame {t + 1}", fontsize=8)
    axes[0, 0].set_ylabel("input", fontsize=9)
    axes[1, 0].set_ylabel("heat map", fontsize=9)
    if title:
        fig.suptitle(title, fontsize=10)
    save_figure(fig, path, dpi=100)


# --------------------------------------------------------------------------- figures
def plot_confusion(cm, classes: list[str], path: str | Path,
                   title: str = "confusion matrix") -> bool:
    """Row-normalised confusion matrix ``cm`` (``(K, K)`` counts, row = true class; an array
    or a CPU tensor) as PNG; False when matplotlib is missing."""
    plt = pyplot()
    if plt is None:
        return False
    cm = np.asarray(cm)
    k = len(classes)
    # float32 like the tensors it comes from; a class without videos keeps a zero row
    norm = cm.astype(np.float32) / np.maximum(cm.sum(axis=1, keepdims=True), 1).astype(np.float32)
    size = min(4 + 0.35 * k, 30)
    fig, ax = plt.subplots(figsize=(size, size * 0.9))
    im = ax.imshow(norm, cmap="Blues", vmin=0, vmax=1)
    fig.colorbar(im, ax=ax, fraction=0.046, pad=0.04)
    if k <= 60:
        ax.set_xticks(range(k), classes, rotation=90, fontsize=7)
        ax.set_yticks(range(k), classes, fontsize=7)
        if k <= 20:
            for i in range(k):
                for j in range(k):
                    if cm[i, j]:
                        ax.text(j, i, int(cm[i, j]), ha="center", va="center", fontsize=7,
                                color="white" if norm[i, j] > 0.5 else "black")
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    ax.set_title(title)
    save_figure(fig, path)
    return True


def plot_curves(histories: dict[str, list[dict]], path: str | Path) -> bool:
    """Training loss and validation top-1 per epoch for every model, one PNG.

    ``histories``: model name -> per-epoch records with ``epoch``, ``train_loss`` and (where
    validated) ``val_top1``, as in a run's ``metrics.jsonl``. False when matplotlib is missing.
    """
    plt = pyplot()
    if plt is None:
        return False
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(10, 4))
    for name, hist in histories.items():
        epochs = [h["epoch"] for h in hist]
        ax1.plot(epochs, [h["train_loss"] for h in hist], marker="o", label=name)
        val = [(h["epoch"], h["val_top1"]) for h in hist if "val_top1" in h]
        if val:
            ax2.plot(*zip(*val), marker="o", label=name)
    ax1.set_xlabel("epoch")
    ax1.set_ylabel("training loss")
    ax1.set_title("training loss")
    ax2.set_xlabel("epoch")
    ax2.set_ylabel("validation top-1 (%)")
    ax2.set_ylim(0, 100)
    ax2.set_title("validation accuracy")
    for ax in (ax1, ax2):
        ax.grid(alpha=0.3)
        ax.legend()
    save_figure(fig, path)
    return True
