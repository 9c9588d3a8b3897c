"""What ``vidcls bench accuracy`` compares: the experiments, the presets, the run plan.

Four experiments, each trained on the built-in synthetic datasets (:mod:`vidcls.data.synthetic`)
with one recipe per model family, so every model of a table gets the same data and budget:

``table1``     the TSM paper's Table 1 pattern: TSN vs TSM on ``appearance`` (TSM ~ TSN) and on
               ``temporal`` (TSM >> TSN; TSN at chance *within* each pair of time-reversed
               classes).
``shift``      the shift-proportion figure: in-place vs residual shift, 1/8, 1/4, 1/2 and all
               channels moved (``shift_div`` 16, 8, 4, 2), TSN as proportion 0, on the
               preset's ``motion_kind`` (``objects``: which object moves which way, where the
               spatial features an in-place shift damages matter, as on Something-Something).
``online``     uni-directional (online, streamable) vs bi-directional (offline) shift on
               ``temporal``.
``attention``  TimeSformer's attention table: ``space``, ``joint``, ``divided``, ``local_global``,
               ``axial`` on ``appearance`` and the ``motion_kind``.

Every run has a **start**: ``scratch`` (random initialisation) or ``pretrained`` (the papers'
ImageNet start, imitated: the backbone of its family pretrained once on an image task, see
:meth:`Preset.pretrain_recipe`; TimeSformer's temporal attention starts as a copy of the
spatial one, as the reference does). A preset names its ``starts`` and the experiments that run
from every one of them (``both_starts``; the others run from the first start only), so the
tables whose claims hinge on the start are reported side by side.

:func:`plan` turns a :class:`Preset` into one :class:`RunSpec` per (experiment, model, start,
seed) cell; :meth:`RunSpec.key` is the identity of the training run behind a cell, so a run that
two tables share (the default TSM is in ``table1`` and ``online``) is trained once.
:mod:`vidcls.repro.accuracy` runs the plan.

The attention schemes and shift placements are the models' own lists
(:data:`vidcls.models.timesformer.ATTENTION_TYPES`, :data:`vidcls.models.tsn.SHIFT_PLACES`);
only the order in which the tables, plots and the plan list them is set here, to follow the
papers.
"""
from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from typing import Any

from vidcls.models.timesformer import ATTENTION_TYPES
from vidcls.models.tsn import SHIFT_PLACES

EXPERIMENTS = ("table1", "shift", "online", "attention")
STARTS = ("scratch", "pretrained")
SHIFT_DIVS = (16, 8, 4, 2)  # 1/8, 1/4, 1/2, all of the channels moved (both directions together)


# The TSM of ``table1`` and ``online`` (offline): bi-directional residual shift of 1/8 each way.
DEFAULT_SHIFT = {"shift_div": 8, "shift_place": "residual", "shift_mode": "bidirectional"}


def in_paper_order(names: tuple[str, ...], first: tuple[str, ...]) -> tuple[str, ...]:
    """``names`` with ``first`` leading (a paper's order), the rest after them in their own
    order, so a scheme a model gains later still shows up, at the end."""
    missing = [n for n in first if n not in names]
    if missing:
        raise ValueError(f"{', '.join(missing)} not among {names}; update the paper order")
    return tuple(first) + tuple(n for n in names if n not in first)


# The TimeSformer paper's Table 1 order: space, joint, divided, then the sparse schemes
# (local_global, axial).
ATTENTIONS = in_paper_order(ATTENTION_TYPES, ("space", "joint", "divided", "local_global"))
# The TSM paper's Fig. 3 order: the naive in-place shift, then the residual shift it proposes.
PLACES = in_paper_order(SHIFT_PLACES, ("inplace", "residual"))


def fraction_name(frac: float) -> str:
    """Share of the channels shifted as the tables write it: ``1/8`` ... ``all``."""
    return "all" if frac >= 1 else f"1/{round(1 / frac)}"



@dataclass(frozen=True)
class Preset:
    """Data size, models, training recipe and starts of one benchmark scale.

    The training recipe is the demo's (AdamW, cosine, multi-scale crop, no flip). ``vit`` holds
    the TimeSformer architecture: a tiny ViT, since ViT-B is far beyond a CPU budget; patches of
    4 pixels give it an 8x8 grid per 32-pixel frame (64 tokens, 512 per 8-frame clip for
    ``joint``), enough to localise several small objects.

    ``pretrained`` runs start from an *image* model of their family pretrained once (shared by
    every run and seed, cached under its :func:`pretrain_key`) on single frames of a separate
    image-classification corpus: ``appearance`` videos of ``pretrain_classes`` classes (16 =
    8 shapes x 2 textures, each shape in its colour family) drawn with another seed. A TSN of 1
    frame is a plain image CNN; the ViT is a ``space`` TimeSformer, which treats the frames of a
    clip as separate images (``vit_pretrain_frames`` of them, cls tokens averaged).
    """

    name: str
    num_classes: int = 4             # 2 pairs of time-reversed classes on the motion kinds
    videos_per_class: int = 40
    val_fraction: float = 0.2
    video_frames: int = 16           # frames in each synthetic video file
    size: int = 32                   # video width = height = crop size (pixels)
    num_frames: int = 8              # frames sampled per clip (T)
    seeds: tuple[int, ...] = (0, 1, 2)
    backbone: str = "resnet18"
    batch_size: int = 8
    weight_decay: float = 0.05
    cnn_epochs: int = 8
    cnn_lr: float = 0.002
    vit_epochs: int = 12
    vit_lr: float = 0.001
    vit_batch_size: int | None = None  # None: ``batch_size``
    vit: dict = field(default_factory=lambda: dict(img_size=32, patch_size=4, embed_dim=64,
                                                   depth=4, num_heads=4, drop_path_rate=0.0))
    max_steps_per_epoch: int | None = None
    device: str = "cpu"
    data_seed: int = 0
    # the temporal dataset of ``shift`` and ``attention`` (``table1`` and ``online``: temporal)
    motion_kind: str = "objects"
    # starts: every experiment of ``both_starts`` runs from each, the others from the first
    starts: tuple[str, ...] = STARTS
    both_starts: tuple[str, ...] = ("shift", "attention")
    # image pretraining (``pretrained`` start)
    pretrain_classes: int = 16
    pretrain_videos_per_class: int = 200
    pretrain_batch_size: int = 32
    cnn_pretrain_epochs: int = 12
    cnn_pretrain_lr: float = 0.002
    vit_pretrain_epochs: int = 12
    vit_pretrain_lr: float = 0.001
    pretrain_max_steps_per_epoch: int | None = None
    pretrain_val_fraction: float = 0.1
    # frames per pretraining clip: one is an image; more frames of a video add views of the
    # same object, which at 4-pixel patches cost the ViT more than fresh videos would
    cnn_pretrain_frames: int = 1
    vit_pretrain_frames: int = 1

    def recipe(self, family: str, start: str = "scratch") -> dict:
        """Everything about training that a run's result depends on (part of its key); a
        ``pretrained`` run's includes its pretraining recipe (a scratch run's has none, so its
        key is what it was before starts existed)."""
        epochs, lr = ((self.cnn_epochs, self.cnn_lr) if family == "cnn"
                      else (self.vit_epochs, self.vit_lr))
        batch = self.batch_size if family == "cnn" else self.vit_batch_size or self.batch_size
        out = dict(epochs=epochs, lr=lr, batch_size=batch,
                   weight_decay=self.weight_decay, num_frames=self.num_frames,
                   max_steps_per_epoch=self.max_steps_per_epoch, data=self.data_options())
        if start == "pretrained":
            out["pretrain"] = self.pretrain_recipe(family)
        return out

    def pretrain_recipe(self, family: str) -> dict:
        """The image pretraining of a family (its identity: :func:`pretrain_key`)."""
        epochs, lr = ((self.cnn_pretrain_epochs, self.cnn_pretrain_lr) if family == "cnn"
                      else (self.vit_pretrain_epochs, self.vit_pretrain_lr))
        arch = {"model": f"tsn_{self.backbone}"} if family == "cnn" else {
            "model": "timesformer_base", **self.vit}
        frames = self.cnn_pretrain_frames if family == "cnn" else self.vit_pretrain_frames
        out = dict(epochs=epochs, lr=lr, batch_size=self.pretrain_batch_size,
                   weight_decay=self.weight_decay, arch=arch,
                   max_steps_per_epoch=self.pretrain_max_steps_per_epoch,
                   data=self.pretrain_data_options())
        if frames != 1:  # (keeps the key of 1-frame recipes unchanged)
            out["num_frames"] = frames
        return out

    def data_options(self) -> dict:
        return dict(num_classes=self.num_classes, videos_per_class=self.videos_per_class,
                    num_frames=self.video_frames, size=self.size, seed=self.data_seed,
                    val_fraction=self.val_fraction)

    def pretrain_data_options(self) -> dict:
        return dict(num_classes=self.pretrain_classes,
                    videos_per_class=self.pretrain_videos_per_class,
                    num_frames=self.video_frames, size=self.size, seed=self.data_seed + 1000,
                    val_fraction=self.pretrain_val_fraction)

    def starts_of(self, experiment: str) -> tuple[str, ...]:
        """The starts an experiment runs from in this preset."""
        return self.starts if experiment in self.both_starts else self.starts[:1]


PRESETS: dict[str, Preset] = {
    # Tests and smoke checks: a handful of videos, one optimizer step per stage.
    "toy": Preset("toy", videos_per_class=4, val_fraction=0.25, video_frames=8, num_frames=4,
                  backbone="mobilenetv2",
                  seeds=(0,), cnn_epochs=1, vit_epochs=1, max_steps_per_epoch=1, batch_size=4,
                  vit=dict(img_size=32, patch_size=16, embed_dim=16, depth=1, num_heads=2,
                           drop_path_rate=0.0),
                  pretrain_classes=8, pretrain_videos_per_class=2, pretrain_batch_size=4,
                  cnn_pretrain_epochs=1, vit_pretrain_epochs=1, pretrain_max_steps_per_epoch=1,
                  pretrain_val_fraction=0.5),
    # 2 CPU cores, under 90 minutes: ResNet-18 TSN/TSM and a 4-block TimeSformer on 32x32
    # clips; shift and attention from scratch and pretrained, table1 and online from scratch.
    # The ViT gets 30 epochs of batch 4 (960 steps): pilots of the pretrained divided model on
    # ``objects`` reached 31 % top-1 after 12 epochs of batch 8, 38 % after 24 and 41-53 %
    # after 30 epochs of batch 4 (chance 25 %; the rule for "learned" is chance + 15).
    "small": Preset("small", vit_epochs=30, vit_batch_size=4),
    # A GPU: more classes and videos, 64x64 clips, ResNet-50, a wider TimeSformer, 5 seeds,
    # every experiment from both starts.
    "full": Preset("full", num_classes=8, videos_per_class=300, size=64, seeds=(0, 1, 2, 3, 4),
                   backbone="resnet50", batch_size=16, cnn_epochs=10, vit_epochs=30,
                   device="auto", both_starts=EXPERIMENTS,
                   vit=dict(img_size=64, patch_size=8, embed_dim=192, depth=6, num_heads=3,
                            drop_path_rate=0.1),
                   pretrain_videos_per_class=1000, pretrain_batch_size=128,
                   cnn_pretrain_epochs=30, vit_pretrain_epochs=150, vit_pretrain_frames=8),
}


@dataclass(frozen=True)
class RunSpec:
    """One cell of one experiment's table: a model on a dataset kind from a start, one seed."""

    experiment: str
    label: str                      # row label in the table, e.g. "TSM", "residual 1/4"
    kind: str                       # synthetic dataset kind
    model: str                      # create_model name
    options: tuple                  # architecture options as sorted (key, value) pairs
    seed: int
    extra: tuple = ()               # plot coordinates etc., e.g. (("shift_fraction", 0.25),)
    start: str = "scratch"          # "scratch" | "pretrained"

    @property
    def family(self) -> str:
        return "vit" if self.model.startswith("timesformer") else "cnn"

    def key(self, preset: Preset) -> str:
        """Identity of the training run: equal keys = the same run (shared across tables)."""
        from vidcls.data.synthetic import VERSION

        blob = json.dumps(dict(kind=self.kind, model=self.model, options=list(self.options),
                               seed=self.seed, recipe=preset.recipe(self.family, self.start),
                               synth_version=VERSION),
                          sort_keys=True, default=str)
        return hashlib.sha1(blob.encode()).hexdigest()[:12]


def _spec(experiment: str, label: str, kind: str, model: str, options: dict, seed: int,
          start: str, **extra: Any) -> RunSpec:
    return RunSpec(experiment, label, kind, model, tuple(sorted(options.items())), seed,
                   tuple(sorted(extra.items())), start)


def check_starts(starts: tuple[str, ...] | list[str]) -> tuple[str, ...]:
    """``starts`` as a tuple, each one of :data:`STARTS` (a ValueError names a wrong one)."""
    bad = [s for s in starts if s not in STARTS]
    if bad or not starts:
        raise ValueError(f"unknown start(s) {', '.join(bad) or '(none)'}; choose from "
                         f"{', '.join(STARTS)}")
    return tuple(dict.fromkeys(starts))


def plan(preset: Preset, only: list[str] | None = None,
         seeds: tuple[int, ...] | None = None,
         starts: tuple[str, ...] | None = None) -> list[RunSpec]:
    """All runs of the selected experiments, seed-major (every table gets its first seed
    before any table gets its second, so a stopped run still has one of everything), from
    scratch before pretrained within a seed.

    ``starts`` given: every selected experiment from each of them; None: the preset's
    (:meth:`Preset.starts_of`)."""
    only = list(only or EXPERIMENTS)
    bad = [e for e in only if e not in EXPERIMENTS]
    if bad:
        raise ValueError(f"unknown experiment(s) {', '.join(bad)}; choose from "
                         f"{', '.join(EXPERIMENTS)}")
    chosen = check_starts(starts) if starts is not None else None
    tsn, tsm = f"tsn_{preset.backbone}", f"tsm_{preset.backbone}"
    motion = preset.motion_kind
    specs: list[RunSpec] = []
    for seed in seeds or preset.seeds:
        for start in STARTS:
            def runs(experiment: str) -> bool:
                return experiment in only and start in (
                    chosen if chosen is not None else preset.starts_of(experiment))

            if runs("table1"):
                for kind in ("appearance", "temporal"):
                    specs.append(_spec("table1", "TSN", kind, tsn, {}, seed, start))
                    specs.append(_spec("table1", "TSM", kind, tsm, DEFAULT_SHIFT, seed, start))
            if runs("online"):
                specs.append(_spec("online", "TSN (no shift)", "temporal", tsn, {}, seed, start))
                specs.append(_spec("online", "offline (bi-directional)", "temporal", tsm,
                                   DEFAULT_SHIFT, seed, start))
                specs.append(_spec("online", "online (uni-directional)", "temporal", tsm,
                                   {**DEFAULT_SHIFT, "shift_mode": "unidirectional"}, seed,
                                   start))
            if runs("shift"):
                specs.append(_spec("shift", "TSN (no shift)", motion, tsn, {}, seed, start,
                                   shift_fraction=0.0, place="none"))
                for place in PLACES:
                    for div in SHIFT_DIVS:
                        frac = 2 / div
                        specs.append(_spec("shift", f"{place} {fraction_name(frac)}", motion,
                                           tsm, {**DEFAULT_SHIFT, "shift_div": div,
                                                 "shift_place": place}, seed, start,
                                           shift_fraction=frac, place=place))
            if runs("attention"):
                for kind in ("appearance", motion):
                    for att in ATTENTIONS:
                        specs.append(_spec("attention", att, kind, "timesformer_base",
                                           {**preset.vit, "attention": att}, seed, start))
    return specs


def pretrain_key(family: str, preset: Preset) -> str:
    """Identity of a family's image pretraining (the name of its weights file): its recipe
    and the synthetic data's version, nothing about the runs that use it, so every run and
    seed of every preset with the same pretraining shares one."""
    from vidcls.data.synthetic import VERSION

    blob = json.dumps(dict(preset.pretrain_recipe(family), synth_version=VERSION),
                      sort_keys=True, default=str)
    return f"pretrain-{family}-" + hashlib.sha1(blob.encode()).hexdigest()[:8]

