"""Predict the classes of video files with a trained checkpoint.

    >>> import vidcls
    >>> vidcls.predict(["clip.mp4"], checkpoint="runs/demo/tsm/checkpoints/best", top_k=3)
    [{'video': 'clip.mp4', 'predictions': [{'label': 'moving left', 'index': 1,
      'probability': 0.97}, ...]}]

Everything about the input comes from the checkpoint's model card
(:class:`~vidcls.models.Preprocessing`, read by ``engine.checkpoint.read_preprocessing``):
frames per clip, segment or dense sampling, short-side resize, crop size, mean/std. So a video
is predicted exactly the way ``vidcls eval`` scores it. A video that cannot be decoded gets an
``error`` entry instead of stopping the other predictions.

A multi-label checkpoint (``meta["multi_label"]``, trained with BCE) gives every class its own
sigmoid probability (they do not sum to 1); single-label ones give softmax probabilities.
"""
from __future__ import annotations

import logging
from pathlib import Path
from typing import Iterable, Sequence

import torch
from torch import nn

from vidcls.data.dataset import VideoClipDataset
from vidcls.data.formats import VideoRecord
from vidcls.data.transforms import normalize
from vidcls.data.video import VideoDecodeError
from vidcls.engine.checkpoint import load_model, read_preprocessing
from vidcls.engine.inference import forward_views, prepare_for_inference
from vidcls.engine.runtime import autocast_context, resolve_device

__all__ = ["predict", "Predictor", "format_predictions"]


class Predictor:
    """A loaded checkpoint ready to classify videos (reuse it for many calls).

    ``Predictor(checkpoint)`` or ``Predictor(model=..., meta=...)`` (a model in memory with its
    checkpoint meta: classes and preprocessing). ``preprocessing`` is the model card every clip
    is prepared with; ``mean`` / ``std`` are its normalisation as tensors on ``device``
    (``auto`` / ``cpu`` / ``cuda`` / ``cuda:N`` / ``mps``). ``multi_label``: the model's classes
    are independent (sigmoid probabilities), from the checkpoint meta. ``precision``: ``auto``
    (default: bf16 where the device computes it natively, else fp32), ``fp32``, ``bf16`` or
    ``fp16`` (CUDA); CNNs also run in ``channels_last`` (:func:`prepare_for_inference`), and
    a CNN loaded from ``checkpoint`` has its batch norms folded into its convolutions (a model
    passed in is left trainable).
    """

    def __init__(self, checkpoint: str | Path | None = None, *, model: nn.Module | None = None,
                 meta: dict | None = None, device: str | torch.device = "cpu",
                 precision: str = "auto"):
        self.device = resolve_device(device, option="--device ")
        owned = model is None  # loaded here: nobody else holds it, so it may be folded
        if model is None:
            if checkpoint is None:
                raise ValueError("give a checkpoint path (or a model with its meta)")
            model, meta = load_model(checkpoint, device=self.device)
        if meta is None:
            raise ValueError("a model passed directly needs its meta (classes, preprocessing)")
        self.model = model
        self.precision = prepare_for_inference(model, self.device, precision,
                                               fold_batchnorm=owned)
        self.meta = meta
        self.classes = list(meta["classes"])
        self.multi_label = bool(meta.get("multi_label", False))
        self.preprocessing = read_preprocessing(meta, model)
        self.mean = torch.tensor(self.preprocessing.mean, dtype=torch.float32, device=self.device)
        self.std = torch.tensor(self.preprocessing.std, dtype=torch.float32, device=self.device)

    def dataset(self, videos: Sequence[str], *, num_clips: int = 1, num_crops: int = 1,
                twice: bool = False) -> VideoClipDataset:
        """The test views of ``videos`` as the model card says (no labels, no retries)."""
        prep = self.preprocessing
        records = [VideoRecord(str(v), -1) for v in videos]  # -1: no label
        return VideoClipDataset(records, self.classes, **prep.sampling_options(), train=False,
                                transform=prep.eval_transform(num_crops), num_clips=num_clips,
                                twice=twice, max_retries=0)

    def load_clip(self, video: str | Path) -> tuple[torch.Tensor, torch.Tensor]:
        """One test view of ``video``: the uint8 frames ``(T, 3, H, W)`` the model sees and the
        normalised model input ``(T, 3, H, W)`` (float, on ``device``)."""
        clip = self.dataset([str(video)])[0]["clip"]  # uint8 (T, 3, H, W)
        return clip, normalize(clip.to(self.device), self.mean, self.std)

    @torch.no_grad()
    def probabilities(self, clip: torch.Tensor) -> torch.Tensor:
        """uint8 ``(T, 3, H, W)`` or ``(V, T, 3, H, W)`` -> class probabilities ``(K,)``,
        averaged over the views (softmax; sigmoid for a multi-label model)."""
        views = clip if clip.dim() == 5 else clip.unsqueeze(0)  # (V, T, 3, H, W)
        x = normalize(views.to(self.device), self.mean, self.std)  # (V, T, 3, H, W) float
        # one video with a views axis: (1, V, T, 3, H, W) -> view-averaged probabilities (1, K)
        with autocast_context(self.device, self.precision):
            probs = forward_views(self.model, x[None], multi_label=self.multi_label)
        return probs[0].float().cpu()

    def __call__(self, videos: str | Path | Iterable[str | Path], *, top_k: int = 5,
                 num_clips: int = 1, num_crops: int = 1, twice: bool = False) -> list[dict]:
        if isinstance(videos, (str, Path)):
            videos = [videos]
        videos = [str(v) for v in videos]
        if not videos:
            return []
        ds = self.dataset(videos, num_clips=num_clips, num_crops=num_crops, twice=twice)
        k = max(1, min(top_k, len(self.classes)))
        out = []
        # An unreadable video becomes an "error" entry here; the dataset's "using sample N
        # instead" warning (meant for training) would only confuse.
        data_log = logging.getLogger("vidcls.data")
        level = data_log.level
        data_log.setLevel(logging.ERROR)
        try:
            for i, video in enumerate(videos):
                out.append(self._one(ds, i, video, k))
        finally:
            data_log.setLevel(level)
        return out

    def _one(self, ds: VideoClipDataset, i: int, video: str, k: int) -> dict:
        """Top-``k`` of item ``i`` of ``ds`` (or its decoding error)."""
        try:
            item = ds[i]
        except (RuntimeError, VideoDecodeError) as err:
            reason = ds.bad_files.get(video) or str(err)
            return {"video": video, "error": reason, "predictions": []}
        probs = self.probabilities(item["clip"])
        top_p, top_i = probs.topk(k)
        out = {"video": video, "predictions": [
            {"label": self.classes[int(j)], "index": int(j), "probability": float(p)}
            for p, j in zip(top_p, top_i)]}
        if self.multi_label:
            out["multi_label"] = True  # independent probabilities, not a distribution
        return out


def predict(videos: str | Path | Iterable[str | Path], checkpoint: str | Path, *,
            top_k: int = 5, num_clips: int = 1, num_crops: int = 1, twice: bool = False,
            device: str | torch.device = "cpu", precision: str = "auto") -> list[dict]:
    """Top-``k`` classes and probabilities for each video, with a checkpoint's preprocessing.

    Returns one dict per video: ``{"video", "predictions": [{"label", "index",
    "probability"}, ...]}``, or ``{"video", "error", "predictions": []}`` when it cannot be read.
    A multi-label model's entries also hold ``"multi_label": True``: each probability is its
    class's own (sigmoid), so they need not sum to 1.
    """
    return Predictor(checkpoint, device=device, precision=precision)(videos, top_k=top_k, num_clips=num_clips,
                                                num_crops=num_crops, twice=twice)


def format_predictions(results: list[dict]) -> str:
    """The text ``vidcls predict`` prints: each video, then its classes with percentages."""
    lines = []
    for r in results:
        lines.append(r["video"] + ("  (multi-label: each class's own probability)"
                                   if r.get("multi_label") else ""))
        if r.get("error"):
            lines.append(f"  error: {r['error']}")
        for p in r["predictions"]:
            lines.append(f"  {100 * p['probability']:6.2f}%  {p['label']}")
    return "\n".join(lines)
