"""Clip-consistent augmentation on uint8 torch tensors (CPU or GPU).

Conventions (what the rest of vidcls relies on):
  - Input: a decoded clip ``uint8 (T, H, W, 3)`` (numpy array or tensor, as ``VideoReader``
    returns it); a ``(T, 3, H, W)`` tensor is accepted too.
  - Output: ``uint8 (T, 3, h, w)``; multi-crop test transforms return ``(crops, T, 3, h, w)``.
  - One random draw per clip, applied to every frame (a crop that moved between frames would
    add fake motion).
  - The reference recipes (TSM, mmaction2): resize the short side to ``resize`` (256), then crop
    whole pixels of that frame, then (train) resize the crop to ``size`` (224). Done literally,
    so a centre crop is the reference's centre crop; the resize is skipped when the frame
    already has that short side, and a crop of the output size is not resized again.
  - Normalisation is separate (``normalize``): it turns uint8 into float and can run after the
    batch reaches the GPU, which moves 4x fewer bytes than float clips.

Train transforms (``build_train_transform(kind=...)``):
  - ``"multiscale"``: TSM's multi-scale crop: crop side lengths drawn from
    ``scales * short side`` (1, .875, .75, .66), width and height at most one scale step apart,
    placed at one of 13 fixed positions (corners, centre, edge midpoints, quarter points),
    resized to ``size x size``.
  - ``"random_resized"``: Inception / torchvision random-resized crop: area fraction in
    ``area=(0.08, 1)``, aspect ratio log-uniform in ``(3/4, 4/3)``, random position.
  - ``"resize_crop"``: short side resized to a random length in ``short_side=(resize, resize)``
    (e.g. ``(256, 320)`` for SlowFast/TimeSformer-style scale jitter), then a random
    ``size x size`` crop.
  - ``"center"``: no random crop, the test-time centre crop (only the flip is random).
  All of them optionally flip horizontally with probability 0.5 (``flip``). Flip is off by default:
  on direction-dependent datasets (Something-Something, Jester, the synthetic ``temporal`` set)
  a flip changes the class, so either keep it off or pass ``flip_label_map`` ({left: right, ...},
  made symmetric automatically) and call ``transform.with_label(frames, label)``.

Test transforms (``build_test_transform(size, resize, num_crops)``): short side to ``resize``, then
  1 = centre crop, 3 = three ``size`` crops along the long side (TSM's full-resolution test with
  ``size == resize``), 10 = four corners + centre and their horizontal flips.
"""
from __future__ import annotations

import math
from typing import Mapping, Sequence

import numpy as np
import torch
import torch.nn.functional as F

TSM_SCALES = (1.0, 0.875, 0.75, 0.66)

Box = tuple[int, int, int, int]  # top, left, height, width (pixels of the original frame)


# --------------------------------------------------------------------------- tensor helpers
def to_clip_tensor(frames) -> torch.Tensor:
    """``(T, H, W, 3)`` numpy/tensor (or ``(T, 3, H, W)`` tensor) -> uint8 ``(T, 3, H, W)``."""
    clip = torch.from_numpy(np.ascontiguousarray(frames)) if isinstance(frames, np.ndarray) \
        else frames
    if clip.dim() != 4:
        raise ValueError(f"expected a clip of shape (T, H, W, 3), got {tuple(clip.shape)}")
    if clip.shape[-1] == 3:
        clip = clip.permute(0, 3, 1, 2)  # (T, 3, H, W)
    elif clip.shape[1] != 3:
        raise ValueError(f"expected a clip of shape (T, H, W, 3) or (T, 3, H, W), "
                         f"got {tuple(clip.shape)}")
    if clip.dtype != torch.uint8:
        raise ValueError(f"expected uint8 frames, got {clip.dtype} (decode with VideoReader "
                         "or convert with .to(torch.uint8))")
    return clip


def crop_resize(clip: torch.Tensor, box: Box, out_hw: tuple[int, int]) -> torch.Tensor:
    """Crop ``box`` from every frame of ``(T, 3, H, W)`` uint8 and resize it to ``out_hw``.

    Bilinear with antialiasing (matters when shrinking 720p to 224), rounded back to uint8.
    """
    top, left, h, w = box
    crop = clip[:, :, top:top + h, left:left + w]  # (T, 3, h, w)
    if (h, w) == tuple(out_hw):
        return crop.contiguous()
    if crop.device.type == "cpu":
        # torch's native uint8 path (channels-last, which decoded (T, H, W, 3) frames already
        # are): ~10x faster than going through float, and within 1 of it
        crop = crop.contiguous(memory_format=torch.channels_last)
        x = F.interpolate(crop, size=tuple(out_hw), mode="bilinear", align_corners=False,
                          antialias=True)  # (T, 3, oh, ow) uint8
        return x.contiguous()
    x = F.interpolate(crop.float(), size=tuple(out_hw), mode="bilinear", align_corners=False,
                      antialias=True)  # (T, 3, oh, ow)
    return x.round_().clamp_(0, 255).to(torch.uint8)


def resize_short_side(clip: torch.Tensor, size: int) -> torch.Tensor:
    """Resize ``(T, 3, H, W)`` so that its short side is ``size`` (aspect kept)."""
    h, w = clip.shape[-2:]
    return crop_resize(clip, (0, 0, h, w), _short_side_shape(h, w, size))


def _short_side_shape(h: int, w: int, size: int) -> tuple[int, int]:
    if h <= w:
        return size, max(1, round(w * size / h))
    return max(1, round(h * size / w)), size


def _prepare(clip: torch.Tensor, short: int) -> torch.Tensor:
    """The clip with short side ``short`` (unchanged if it already has it)."""
    h, w = clip.shape[-2:]
    return clip if min(h, w) == short else resize_short_side(clip, short)


def _int_box(box: Sequence[float], h: int, w: int) -> Box:
    """Whole-pixel box inside an ``h x w`` frame."""
    top, left, bh, bw = (int(v) for v in box)
    bh, bw = min(max(1, bh), h), min(max(1, bw), w)
    return min(max(0, top), h - bh), min(max(0, left), w - bw), bh, bw


def normalize(clip: torch.Tensor, mean: Sequence[float], std: Sequence[float], *,
              scale: float | None = None, dtype: torch.dtype = torch.float32) -> torch.Tensor:
    """``(..., 3, H, W)`` -> float ``(x * scale - mean) / std``, per channel, on ``clip``'s device.

    The one normaliser of model input (training, eval, predict, stream, explain). ``mean``/``std``
    are in [0, 1] units (ImageNet: (0.485, 0.456, 0.406) / (0.229, 0.224, 0.225); TimeSformer:
    0.45 / 0.225); lists or tensors already on the device. ``scale`` defaults to 1/255 for uint8
    input and 1 for float input (float clips are taken to be in [0, 1] already), so a uint8 clip
    and the same clip as float in [0, 1] give the same result. The input is never modified; the
    output is one new tensor (the steps run in place on it: a GPU batch is not copied 3 times).
    """
    if clip.dim() < 3 or clip.shape[-3] != 3:
        raise ValueError(f"normalize expects (..., 3, H, W), got {tuple(clip.shape)}; "
                         f"move the channel axis before H, W")
    x = clip.to(dtype, copy=True)  # (..., 3, H, W)
    if scale is not None:
        x.mul_(scale)
    elif clip.dtype == torch.uint8:
        x.div_(255.0)  # [0, 255] -> [0, 1]
    m = torch.as_tensor(mean, dtype=dtype, device=clip.device).view(3, 1, 1)
    s = torch.as_tensor(std, dtype=dtype, device=clip.device).view(3, 1, 1)
    return x.sub_(m).div_(s)


def symmetric_label_map(pairs: Mapping[int, int] | None) -> dict[int, int]:
    """``{a: b}`` -> ``{a: b, b: a}``: flipping twice must give back the original label."""
    out: dict[int, int] = {}
    for a, b in (pairs or {}).items():
        a, b = int(a), int(b)
        if out.get(a, b) != b or out.get(b, a) != a:
            raise ValueError(f"flip_label_map is inconsistent at {a} <-> {b}")
        out[a], out[b] = b, a
    return out


def _swap_label(label, mapping: dict[int, int]):
    if isinstance(label, (list, tuple)):
        return [mapping.get(int(x), int(x)) for x in label]
    return mapping.get(int(label), int(label))


# --------------------------------------------------------------------------- train transforms
class TrainTransform:
    """Random crop (one of the recipes above) + optional flip, one draw per clip.

    ``t(frames, rng)`` returns ``uint8 (T, 3, size, size)``; ``t.with_label(frames, label, rng)``
    also applies ``flip_label_map`` to the label when the clip was flipped.
    """

    def __init__(self, kind: str = "multiscale", *, size: int = 224, resize: int = 256,
                 flip: bool = False, flip_label_map: Mapping[int, int] | None = None,
                 scales: Sequence[float] = TSM_SCALES, max_distort: int = 1,
                 area: tuple[float, float] = (0.08, 1.0),
                 ratio: tuple[float, float] = (3 / 4, 4 / 3),
                 short_side: tuple[int, int] | None = None):
        if kind not in ("multiscale", "random_resized", "resize_crop", "center"):
            raise ValueError(f"unknown train transform {kind!r}; use 'multiscale', "
                             "'random_resized', 'resize_crop' or 'center'")
        if size < 1 or resize < 1:
            raise ValueError(f"size and resize must be positive, got size={size}, resize={resize}")
        if flip_label_map and not flip:
            raise ValueError("flip_label_map given but flip=False (set flip=True to use it)")
        self.kind = kind
        self.size = size
        self.resize = resize
        self.flip = flip
        self.flip_label_map = symmetric_label_map(flip_label_map)
        self.scales = tuple(scales)
        self.max_distort = max_distort
        self.area = area
        self.ratio = ratio
        self.short_side = tuple(short_side) if short_side else (resize, resize)
        if kind in ("resize_crop", "center") and (
                self.short_side[0] > self.short_side[1] or self.short_side[0] < size):
            raise ValueError(f"short_side range {self.short_side} must be increasing and >= "
                             f"size={size} (the crop must fit)")

    def __repr__(self) -> str:
        return (f"TrainTransform(kind={self.kind!r}, size={self.size}, resize={self.resize}, "
                f"flip={self.flip})")

    # box in coordinates of the frame resized to short side `resize`, i.e. a (rh, rw) frame
    def _multiscale_box(self, rh: int, rw: int, rng) -> tuple[float, ...]:
        base = min(rh, rw)
        lengths = [int(base * s) for s in self.scales]
        # snap lengths within 3 px of the output size to it (as TSM does), avoiding a resize
        lengths = [self.size if abs(x - self.size) < 3 else x for x in lengths]
        pairs = [(lh, lw) for i, lh in enumerate(lengths) for j, lw in enumerate(lengths)
                 if abs(i - j) <= self.max_distort]
        ch, cw = pairs[rng.integers(len(pairs))]
        hs, ws = (rh - ch) // 4, (rw - cw) // 4  # 13 fixed positions on a 5x5 grid
        grid = [(0, 0), (0, 4), (4, 0), (4, 4), (2, 2), (2, 0), (2, 4), (4, 2), (0, 2),
                (1, 1), (1, 3), (3, 1), (3, 3)]
        gy, gx = grid[rng.integers(len(grid))]
        return gy * hs, gx * ws, ch, cw

    def _random_resized_box(self, rh: int, rw: int, rng) -> tuple[float, ...]:
        area = rh * rw
        log_r = (math.log(self.ratio[0]), math.log(self.ratio[1]))
        for _ in range(10):
            target = area * rng.uniform(*self.area)
            ar = math.exp(rng.uniform(*log_r))
            cw = round(math.sqrt(target * ar))
            ch = round(math.sqrt(target / ar))
            if 0 < cw <= rw and 0 < ch <= rh:
                return rng.integers(0, rh - ch + 1), rng.integers(0, rw - cw + 1), ch, cw
        side = min(rh, rw)  # fallback: centre square
        return (rh - side) / 2, (rw - side) / 2, side, side

    def params(self, h: int, w: int, rng: np.random.Generator) -> tuple[int, Box, bool]:
        """Draw (short side to resize to, crop box in that resized frame, flip?) for ``h x w``."""
        short = self.resize
        if self.kind == "resize_crop":
            short = int(rng.integers(self.short_side[0], self.short_side[1] + 1))
        rh, rw = (h, w) if min(h, w) == short else _short_side_shape(h, w, short)
        if self.kind == "multiscale":
            box = self._multiscale_box(rh, rw, rng)
        elif self.kind == "random_resized":
            box = self._random_resized_box(rh, rw, rng)
        elif self.kind == "resize_crop":
            box = (rng.integers(0, rh - self.size + 1), rng.integers(0, rw - self.size + 1),
                   self.size, self.size)
        else:  # center
            box = ((rh - self.size) / 2, (rw - self.size) / 2, self.size, self.size)
        flip = bool(self.flip and rng.random() < 0.5)
        return short, _int_box(box, rh, rw), flip

    def with_label(self, frames, label, rng: np.random.Generator | None = None):
        clip = to_clip_tensor(frames)  # (T, 3, H, W)
        rng = rng if rng is not None else np.random.default_rng()
        short, box, flip = self.params(clip.shape[-2], clip.shape[-1], rng)
        out = crop_resize(_prepare(clip, short), box, (self.size, self.size))  # (T, 3, s, s)
        if flip:
            out = out.flip(-1)
            if label is not None and self.flip_label_map:
                label = _swap_label(label, self.flip_label_map)
        return out, label

    def __call__(self, frames, rng: np.random.Generator | None = None) -> torch.Tensor:
        return self.with_label(frames, None, rng)[0]


# --------------------------------------------------------------------------- test transforms
class TestTransform:
    """Deterministic test views: short side to ``resize``, then 1, 3 or 10 crops of ``size``."""

    __test__ = False  # not a pytest test class

    def __init__(self, size: int = 224, resize: int = 256, num_crops: int = 1):
        if num_crops not in (1, 3, 10):
            raise ValueError(f"num_crops must be 1, 3 or 10, got {num_crops}")
        if size > resize:
            raise ValueError(f"crop size {size} is larger than the resized short side {resize} "
                             "(use resize >= size)")
        self.size = size
        self.resize = resize
        self.num_crops = num_crops

    def __repr__(self) -> str:
        return f"TestTransform(size={self.size}, resize={self.resize}, num_crops={self.num_crops})"

    def boxes(self, h: int, w: int) -> list[tuple[Box, bool]]:
        """(box in the frame resized to short side ``resize``, flip?) per view, in view order."""
        rh, rw = _short_side_shape(h, w, self.resize) if min(h, w) != self.resize else (h, w)
        s = self.size
        cy, cx = (rh - s) // 2, (rw - s) // 2  # as mmaction2's CenterCrop
        if self.num_crops == 1:
            views = [(cy, cx)]
        elif self.num_crops == 3:  # along the long side: start, centre, end
            views = ([(0, cx), (cy, cx), (rh - s, cx)] if rh > rw
                     else [(cy, 0), (cy, cx), (cy, rw - s)])
        else:  # 4 corners + centre, then the same five flipped
            views = [(0, 0), (0, rw - s), (rh - s, 0), (rh - s, rw - s), (cy, cx)]
        out = [((t, l, s, s), False) for t, l in views]
        if self.num_crops == 10:
            out += [(box, True) for box, _ in out]
        return out

    def __call__(self, frames) -> torch.Tensor:
        clip = _prepare(to_clip_tensor(frames), self.resize)  # (T, 3, H', W'), short = resize
        views = []
        for (top, left, h, w), flip in self.boxes(clip.shape[-2], clip.shape[-1]):
            v = clip[:, :, top:top + h, left:left + w]  # (T, 3, size, size)
            views.append(v.flip(-1) if flip else v.contiguous())
        if self.num_crops == 1:
            return views[0]
        return torch.stack(views)  # (crops, T, 3, size, size)

    def with_label(self, frames, label, rng=None):
        return self(frames), label


def build_train_transform(kind: str = "multiscale", size: int = 224, resize: int = 256,
                          flip: bool = False, flip_label_map: Mapping[int, int] | None = None,
                          **options) -> TrainTransform:
    """Training augmentation; see the module docstring for the ``kind`` recipes."""
    return TrainTransform(kind, size=size, resize=resize, flip=flip,
                          flip_label_map=flip_label_map, **options)


def build_test_transform(size: int = 224, resize: int = 256, num_crops: int = 1
                         ) -> TestTransform:
    """Evaluation views: 1 (centre), 3 (along the long side) or 10 (corners+centre, flipped)."""
    return TestTransform(size=size, resize=resize, num_crops=num_crops)
