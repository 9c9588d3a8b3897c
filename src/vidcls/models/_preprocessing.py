"""The model card: how frames must be sampled and prepared for a model, as one typed record.

Why a record and not a dict: the same facts (mean/std, crop size, frame sampling) are written by
the model builders, converters and the trainer, and read by evaluation, prediction, streaming,
export and explanation. As an untyped dict every reader filled gaps with its own defaults (one
fell back to segment sampling, another to the config's), and a misspelled key silently became a
default. Here the record is built once (a preset at model construction, adjusted by the training
config or a converter), saved as ``meta.json["preprocessing"]``, read back by
:meth:`Preprocessing.from_dict` (an unknown key is an error), and every reader builds its input
through :meth:`Preprocessing.eval_transform` and :meth:`Preprocessing.sampling`.

The presets below hold the only mean/std literals of the package.
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any, Mapping

from vidcls.data.transforms import TestTransform, build_test_transform

__all__ = ["Preprocessing", "IMAGENET", "TIMESFORMER", "INCEPTION", "SAMPLINGS"]

SAMPLINGS = ("segment", "dense")


def _size(value: Any) -> int | tuple[int, int]:
    if isinstance(value, (list, tuple)):
        h, w = (int(v) for v in value)
        return h if h == w else (h, w)
    return int(value)


@dataclass(frozen=True)
class Preprocessing:
    """What a clip must look like before the model sees it.

    Args:
        mean, std: per-channel normalisation in [0, 1] units (RGB).
        input_size: crop size (an int, or ``(H, W)`` for a non-square model).
        resize: short side the frames are scaled to before cropping.
        num_frames: frames per clip.
        sampling: ``"segment"`` (TSN: one frame from each of ``num_frames`` equal segments) or
            ``"dense"`` (I3D / TimeSformer: ``clip_len`` consecutive frames every
            ``frame_interval``).
        clip_len, frame_interval: dense sampling window (``clip_len`` None = ``num_frames``).
    """

    mean: tuple[float, float, float]
    std: tuple[float, float, float]
    input_size: int | tuple[int, int] = 224
    resize: int = 256
    num_frames: int = 8
    sampling: str = "segment"
    clip_len: int | None = None
    frame_interval: int = 1

    def __post_init__(self) -> None:
        set_ = lambda name, value: object.__setattr__(self, name, value)  # noqa: E731 (frozen)
        set_("mean", tuple(float(v) for v in self.mean))
        set_("std", tuple(float(v) for v in self.std))
        set_("input_size", _size(self.input_size))
        set_("resize", int(self.resize))
        if len(self.mean) != 3 or len(self.std) != 3 or min(self.std) <= 0:
            raise ValueError(f"preprocessing mean/std need 3 values each (RGB) and std > 0, got "
                             f"mean={self.mean}, std={self.std}")
        if self.sampling not in SAMPLINGS:
            raise ValueError(f"preprocessing sampling={self.sampling!r} is unknown; use one of "
                             f"{SAMPLINGS}")
        if not isinstance(self.num_frames, int) or self.num_frames < 1:
            raise ValueError(f"preprocessing num_frames must be a positive integer, got "
                             f"{self.num_frames!r}")
        if self.resize < min(self.crop_hw):
            raise ValueError(f"preprocessing resize={self.resize} < input_size="
                             f"{self.input_size}: the short side must be at least the crop size")

    # ------------------------------------------------------------------ derived values
    @property
    def crop_hw(self) -> tuple[int, int]:
        size = self.input_size
        return (size, size) if isinstance(size, int) else tuple(size)

    def sampling_options(self) -> dict[str, Any]:
        """Keyword arguments of :class:`vidcls.data.VideoClipDataset` that pick the frames."""
        return dict(num_frames=self.num_frames, sampling=self.sampling,
                    clip_len=self.clip_len or self.num_frames, frame_interval=self.frame_interval)

    def eval_transform(self, num_crops: int = 1) -> TestTransform:
        """The deterministic test views (short side to ``resize``, ``num_crops`` crops)."""
        h, w = self.crop_hw
        if h != w:
            raise ValueError(f"evaluation crops are square; this model takes {h}x{w} input "
                             "(resize and crop the frames yourself)")
        return build_test_transform(size=h, resize=self.resize, num_crops=num_crops)

    def replace(self, **changes: Any) -> "Preprocessing":
        """A copy with some fields changed (None values are ignored: 'keep the current one')."""
        changes = {k: v for k, v in changes.items() if v is not None}
        _check_keys(changes, "Preprocessing.replace")
        return dataclasses.replace(self, **changes)

    # ------------------------------------------------------------------ meta.json
    def to_dict(self) -> dict[str, Any]:
        out = dataclasses.asdict(self)
        out["mean"], out["std"] = list(self.mean), list(self.std)
        if not isinstance(self.input_size, int):
            out["input_size"] = list(self.input_size)
        return out

    @classmethod
    def from_dict(cls, data: Mapping[str, Any], base: "Preprocessing | None" = None
                  ) -> "Preprocessing":
        """Read a saved record. Keys it lacks come from ``base`` (the model's own card, for
        checkpoints that stored only what differs); an unknown key is an error."""
        if isinstance(data, Preprocessing):
            return data
        data = dict(data)
        _check_keys(data, "preprocessing")
        if base is not None:
            return dataclasses.replace(base, **data)
        return cls(**data)


_FIELDS = {f.name for f in dataclasses.fields(Preprocessing)}


def _check_keys(data: Mapping[str, Any], where: str) -> None:
    unknown = sorted(set(data) - _FIELDS)
    if unknown:
        raise ValueError(f"{where}: unknown key(s) {unknown}; valid keys are {sorted(_FIELDS)}")


#: torchvision / TSM ImageNet statistics (TSN, TSM): short side 256, centre crop 224.
IMAGENET = Preprocessing(mean=(0.485, 0.456, 0.406), std=(0.229, 0.224, 0.225),
                         input_size=224, resize=256)
#: the TimeSformer reference's statistics; it tests with the short side at the crop size.
TIMESFORMER = Preprocessing(mean=(0.45, 0.45, 0.45), std=(0.225, 0.225, 0.225),
                            input_size=224, resize=224)
#: mean = std = 0.5 (timm's "inception" statistics): what HF's and mmaction2's TimeSformer
#: checkpoints were trained with.
INCEPTION = Preprocessing(mean=(0.5, 0.5, 0.5), std=(0.5, 0.5, 0.5), input_size=224, resize=224)
