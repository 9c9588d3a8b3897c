"""Built-in synthetic video datasets, written as real H.264 mp4 files (``vidcls synth``).

Three kinds, mirroring the kinds of real datasets in the TSM paper:

``temporal`` (Something-Something-like): the class is *only* in the motion. Classes come in
pairs (moving right / moving left, approaching / receding, rotating clockwise / anticlockwise,
appearing / vanishing, ...). A video of the second class of a pair is a freshly drawn video of
the first class played backwards. So any single frame, and the *set* of frames of a video, has
exactly the same distribution for both classes of a pair: only the order of frames tells them
apart. A per-frame model with average consensus (TSN) is at chance within each pair (about
50 % overall when it recognises the pair), while a temporal model (TSM) can be near 100 %.

``appearance`` (Kinetics-like): the class is what the object looks like: its shape, its colour
family (each shape has its own band of hues, the way Kinetics classes come with their typical
scenes and colours) and, beyond 8 classes, its texture. Position, size, motion, rotation and
background are random and carry no class information. A single frame suffices: TSN and TSM
should do equally well. (The colour family is there so that tiny models learn the task within a
CPU budget: shape alone at 32 pixels takes a from-scratch ResNet-18 thousands of steps.)

``objects`` (Something-Something-like, where what moves matters too): several objects, each in
its own horizontal lane, all but one still; the class is *which* object moves and *which way*
(``circle moving right``, ``circle moving left``, ``square moving right``, ...). Every video
shows the shapes of every pair (up to 4 objects; distractor shapes fill up to 3), so no single
frame tells the pair, and the second class of a pair is again the first played backwards, so
only the order of frames tells the direction. A model needs both: spatial features that tell
the shapes apart (each shape keeps the colour family it has in ``appearance`` with 8 or more
classes, the image corpus the benchmark pretrains on) and temporal modelling. Damaging the
per-frame features (an in-place shift on the identity path) therefore costs accuracy here,
which it cannot on ``temporal``, where any blob moving is enough.

Every video: a static, softly textured background and saturated, textured objects (one,
except in ``objects``), rendered
with 2x2 supersampling in numpy, encoded with libx264 (``writer.write_video``: ``ultrafast``,
yuv444p, crf 10 so small shapes keep their colours). Everything is a deterministic function of
``seed``: video ``i`` of class ``c`` uses the generator ``default_rng([seed, kind, c, i])``,
independent of the worker that renders it.

Outputs in ``out_dir``: ``videos/cXX_NNNNN.mp4``, ``train.txt`` and ``val.txt`` (list format
``videos/cXX_NNNNN.mp4 label``), ``classes.txt`` and ``synth.json`` (the options; a second
``generate`` with the same options returns at once).
"""
from __future__ import annotations

import json
import multiprocessing as mp
import os
import time
from pathlib import Path

import numpy as np

from .writer import write_video

KINDS = ("temporal", "appearance", "objects")
# Bumped whenever rendering changes, so a dataset (or a benchmark result) made by an older
# version is regenerated instead of reused.
VERSION = 3

# Temporal classes, in pairs (A, B = A reversed), ordered so that small class counts already mix
# different kinds of motion.
TEMPORAL_PAIRS = [
    ("moving right", "moving left", "translate", (1.0, 0.0)),
    ("approaching", "receding", "scale", None),
    ("rotating clockwise", "rotating anticlockwise", "rotate", None),
    ("appearing", "vanishing", "fade", None),
    ("moving down", "moving up", "translate", (0.0, 1.0)),
    ("moving down-right", "moving up-left", "translate", (0.7071, 0.7071)),
    ("moving down-left", "moving up-right", "translate", (-0.7071, 0.7071)),
    ("stretching", "squashing", "stretch", None),
]
TEMPORAL_CLASSES = [name for a, b, _, _ in TEMPORAL_PAIRS for name in (a, b)]

SHAPES = ("circle", "square", "triangle", "star", "cross", "ring", "diamond", "L-shape")
TEXTURES = ("solid", "striped")
APPEARANCE_CLASSES = [f"solid {s}" for s in SHAPES] + [f"striped {s}" for s in SHAPES]
ASYMMETRIC_SHAPES = ("triangle", "L-shape", "star", "cross", "square")  # rotation is visible
# ``objects``: pair p is "SHAPES[p] moving right" / "... moving left" (= the first reversed)
OBJECTS_CLASSES = [f"{s} moving {d}" for s in SHAPES for d in ("right", "left")]
MIN_OBJECTS, MAX_OBJECTS = 3, 4  # objects in an ``objects`` video


def class_names(kind: str, num_classes: int) -> list[str]:
    """The first ``num_classes`` class names of a synthetic dataset kind."""
    names = {"temporal": TEMPORAL_CLASSES, "appearance": APPEARANCE_CLASSES,
             "objects": OBJECTS_CLASSES[:2 * MAX_OBJECTS]}.get(kind)
    if names is None:
        raise ValueError(f"unknown synthetic kind {kind!r}; use one of {', '.join(KINDS)}")
    if kind == "objects" and num_classes % 2:
        raise ValueError(f"objects synthetic data has classes in pairs (moving right / left), "
                         f"got num_classes={num_classes}; use an even number")
    if not 2 <= num_classes <= len(names):
        raise ValueError(f"{kind} synthetic data has 2..{len(names)} classes, "
                         f"got num_classes={num_classes}")
    if kind == "appearance" and num_classes <= len(SHAPES):
        return list(SHAPES[:num_classes])  # texture is random, so the class is the shape
    return names[:num_classes]


def flip_label_map(kind: str, num_classes: int) -> dict[int, int]:
    """Labels a horizontal flip exchanges (left <-> right, clockwise <-> anticlockwise, ...).
    (On ``objects`` a flip also mirrors the L-shape, which no class shows mirrored: don't flip.)"""
    if kind == "objects":
        return {2 * p: 2 * p + 1 for p in range(num_classes // 2)}
    if kind != "temporal":
        return {}
    names = class_names(kind, num_classes)
    swaps = {"moving right": "moving left", "rotating clockwise": "rotating anticlockwise",
             "moving down-right": "moving down-left", "moving up-left": "moving up-right"}
    idx = {n: i for i, n in enumerate(names)}
    return {idx[a]: idx[b] for a, b in swaps.items() if a in idx and b in idx}


# --------------------------------------------------------------------------- drawing
def _hsv_to_rgb(h: float, s: float, v: float) -> np.ndarray:
    k = (np.array([5.0, 3.0, 1.0]) + h * 6.0) % 6.0
    return v - v * s * np.clip(np.minimum(k, 4.0 - k), 0.0, 1.0)  # (3,) in [0, 1]


def _shape_mask(shape: str, u: np.ndarray, v: np.ndarray) -> np.ndarray:
    """Inside-test in object coordinates (the object spans roughly [-1, 1]^2)."""
    r = np.sqrt(u * u + v * v)
    if shape == "circle":
        return r <= 0.9
    if shape == "square":
        return np.maximum(np.abs(u), np.abs(v)) <= 0.72
    if shape == "triangle":  # apex up
        return (v <= 0.65) & (v >= 1.7 * np.abs(u) - 0.95)
    if shape == "star":
        theta = np.arctan2(v, u)
        return r <= 0.5 + 0.42 * np.cos(5 * theta)
    if shape == "cross":
        return ((np.abs(u) <= 0.3) & (np.abs(v) <= 0.9)) | ((np.abs(v) <= 0.3) & (np.abs(u) <= 0.9))
    if shape == "ring":
        return (r <= 0.9) & (r >= 0.5)
    if shape == "diamond":
        return np.abs(u) + np.abs(v) <= 0.95
    if shape == "L-shape":
        return ((u >= -0.8) & (u <= -0.2) & (np.abs(v) <= 0.9)) | (
            (u >= -0.8) & (u <= 0.8) & (v >= 0.3) & (v <= 0.9))
    raise ValueError(f"unknown shape {shape!r}")


class _Scene:
    """Random static content of one video: background, object look, and base geometry.

    ``background=False`` draws only an object's look (no background, no random numbers spent
    on one): an extra object of a multi-object scene, painted into another scene's background
    with :meth:`paint_into`.
    """

    def __init__(self, rng: np.random.Generator, size: int, shape: str, texture: str,
                 hue_band: tuple[float, float] | None = None, *, background: bool = True):
        self.size = size
        ss = 2 * size  # supersampled grid
        coords = ((np.arange(ss) + 0.5) / 2.0).astype(np.float32)  # output-frame pixel units
        self.ys, self.xs = np.meshgrid(coords, coords, indexing="ij")  # (2S, 2S)
        if background:
            self._draw_background(rng, coords)
        self._draw_look(rng, shape, texture, hue_band)

    def _draw_background(self, rng: np.random.Generator, coords: np.ndarray) -> None:
        size = self.size
        # background: a dull colour plus a smooth low-contrast pattern (upsampled 4x4 noise)
        bg = _hsv_to_rgb(rng.random(), rng.uniform(0.1, 0.45), rng.uniform(0.25, 0.6))
        noise = rng.normal(0.0, 0.08, (4, 4, 3)).astype(np.float32)
        pos = np.clip(coords / size * 4 - 0.5, 0, 3)  # (2S,) position on the 4x4 noise grid
        w = np.maximum(0.0, 1.0 - np.abs(pos[:, None] - np.arange(4)[None, :]))  # (2S, 4)
        w = w.astype(np.float32)
        rows = (w[:, :, None, None] * noise[None]).sum(1)  # (2S, 4, 3): bilinear along y
        blobs = sum(w[None, :, k, None] * rows[:, None, k, :] for k in range(4))  # (2S, 2S, 3)
        self.background = np.clip(bg + blobs, 0.0, 1.0).astype(np.float32)  # (2S, 2S, 3)
        # the frame without the object, already downsampled and quantised
        self.background_u8 = _to_uint8(_downsample(self.background))  # (S, S, 3)

    def _draw_look(self, rng: np.random.Generator, shape: str, texture: str,
                   hue_band: tuple[float, float] | None) -> None:
        # object: saturated colour, second colour for the texture at a distant hue
        hue = rng.random() if hue_band is None else rng.uniform(*hue_band) % 1.0
        self.color1 = _hsv_to_rgb(hue, 1.0, 1.0).astype(np.float32)
        self.color2 = _hsv_to_rgb((hue + rng.uniform(0.3, 0.7)) % 1.0, 1.0,
                                  rng.uniform(0.5, 1.0)).astype(np.float32)
        self.color_dark = self.color1 * 0.6 + 0.4 * self.color2
        self.shape = shape
        self.texture = texture
        self.stripe_freq = rng.uniform(2.0, 3.5)
        self.stripe_angle = rng.uniform(0, np.pi)

    def render(self, cx: float, cy: float, radius: float, angle: float = 0.0,
               sx: float = 1.0, sy: float = 1.0, alpha: float = 1.0) -> np.ndarray:
        """One frame: object centred at ``(cx, cy)`` px, ``radius`` px, rotated ``angle``."""
        img = self.background_u8.copy()  # (S, S, 3)
        hit = self._composite(self.background, cx, cy, radius, angle, sx, sy, alpha)
        if hit is not None:
            (py0, py1, px0, px1), region = hit
            img[py0:py1, px0:px1] = _to_uint8(_downsample(region))
        return img

    def paint_into(self, scene: "_Scene", cx: float, cy: float, radius: float,
                   angle: float = 0.0) -> None:
        """Draw this object, still, into ``scene``'s background: it then shows in every frame
        ``scene`` renders (the static objects of a multi-object video)."""
        hit = self._composite(scene.background, cx, cy, radius, angle, 1.0, 1.0, 1.0)
        if hit is not None:
            (py0, py1, px0, px1), region = hit
            scene.background[2 * py0:2 * py1, 2 * px0:2 * px1] = region
            scene.background_u8 = _to_uint8(_downsample(scene.background))  # (S, S, 3)

    def _composite(self, background: np.ndarray, cx: float, cy: float, radius: float,
                   angle: float, sx: float, sy: float, alpha: float
                   ) -> tuple[tuple[int, int, int, int], np.ndarray] | None:
        """The object blended over the supersampled ``background`` within its bounding box:
        ``((py0, py1, px0, px1) in output pixels, region (2h, 2w, 3))``, None when off-frame."""
        # Only the object's bounding square is rendered (supersampled, then averaged 2x2); the
        # rest of the frame is the precomputed background. Shapes lie in [-1, 1]^2, so within
        # sqrt(2) radii of the centre.
        ext = 1.42 * radius * max(sx, sy)
        py0, py1 = max(0, int(cy - ext)), min(self.size, int(cy + ext) + 2)  # output pixels
        px0, px1 = max(0, int(cx - ext)), min(self.size, int(cx + ext) + 2)
        if not (py0 < py1 and px0 < px1 and alpha > 0):
            return None
        y0, y1, x0, x1 = 2 * py0, 2 * py1, 2 * px0, 2 * px1  # supersampled grid
        dx, dy = self.xs[y0:y1, x0:x1] - cx, self.ys[y0:y1, x0:x1] - cy
        c, s = np.float32(np.cos(angle)), np.float32(np.sin(angle))
        u = (c * dx + s * dy) * np.float32(1.0 / (radius * sx))  # object coordinates
        v = (c * dy - s * dx) * np.float32(1.0 / (radius * sy))
        mask = _shape_mask(self.shape, u, v).astype(np.float32) * np.float32(alpha)
        if self.texture == "striped":
            phase = u * np.cos(self.stripe_angle) + v * np.sin(self.stripe_angle)
            second = (np.floor(phase * self.stripe_freq) % 2 == 1)[..., None]
            obj = np.where(second, self.color2, self.color1)  # (h, w, 3)
        else:  # solid with a darker half, so the rotation of symmetric shapes shows
            obj = np.where((u > 0)[..., None], self.color1, self.color_dark)
        bg = background[y0:y1, x0:x1]
        region = bg + (obj - bg) * mask[..., None]  # (2h, 2w, 3)
        return (py0, py1, px0, px1), region


def _downsample(img: np.ndarray) -> np.ndarray:
    """Average 2x2 blocks: ``(2h, 2w, 3)`` -> ``(h, w, 3)``."""
    return (img[0::2, 0::2] + img[1::2, 0::2] + img[0::2, 1::2] + img[1::2, 1::2]) * 0.25


def _to_uint8(img: np.ndarray) -> np.ndarray:
    return (img * np.float32(255.0) + np.float32(0.5)).astype(np.uint8)


def temporal_trajectory(rng: np.random.Generator, motion: str, direction, num_frames: int,
                        size: int) -> list[dict]:
    """Per-frame object geometry (``_Scene.render`` keywords) for the *first* class of a pair.

    Angles grow clockwise on screen (image y points down); sizes are in pixels.
    """
    t = np.linspace(0.0, 1.0, num_frames)  # (T,)
    radius = rng.uniform(0.16, 0.22) * size
    angle0 = rng.uniform(0, 2 * np.pi)
    if motion == "translate":
        dist = rng.uniform(0.4, 0.55) * size  # large: easy to see at 64x64 with 8 frames
        d = np.asarray(direction) * dist
        lo = radius * 0.6 + np.abs(d) / 2  # keep most of the object inside the frame
        mid = rng.uniform(lo, size - lo)
        return [dict(cx=mid[0] + (ti - 0.5) * d[0], cy=mid[1] + (ti - 0.5) * d[1],
                     radius=radius, angle=angle0) for ti in t]
    cx, cy = rng.uniform(0.35 * size, 0.65 * size, 2)
    if motion == "scale":
        r0, r1 = radius * rng.uniform(0.45, 0.6), radius * rng.uniform(1.4, 1.7)
        return [dict(cx=cx, cy=cy, radius=r0 * (r1 / r0) ** ti, angle=angle0) for ti in t]
    if motion == "rotate":
        turn = rng.uniform(0.55, 0.85) * np.pi
        return [dict(cx=cx, cy=cy, radius=radius * 1.2, angle=angle0 + turn * ti) for ti in t]
    if motion == "fade":
        return [dict(cx=cx, cy=cy, radius=radius * 1.2, angle=angle0, alpha=float(ti))
                for ti in t]
    if motion == "stretch":  # width/height ratio goes 0.55 -> 1.65 at constant area
        return [dict(cx=cx, cy=cy, radius=radius * 1.2, angle=0.0,
                     sx=float(np.sqrt(0.55 * 3.0 ** ti)), sy=float(1 / np.sqrt(0.55 * 3.0 ** ti)))
                for ti in t]
    raise ValueError(f"unknown motion {motion!r}")


def _temporal_frames(rng: np.random.Generator, motion: str, direction, num_frames: int,
                     size: int) -> np.ndarray:
    """A video of the *first* class of a pair; the second class is this reversed."""
    shape = str(rng.choice(ASYMMETRIC_SHAPES if motion == "rotate" else SHAPES))
    scene = _Scene(rng, size, shape, str(rng.choice(TEXTURES)))
    traj = temporal_trajectory(rng, motion, direction, num_frames, size)
    return np.stack([scene.render(**p) for p in traj])  # (T, S, S, 3)


def appearance_hue_band(shape_index: int, num_classes: int) -> tuple[float, float]:
    """Hues (in [0, 1), the colour wheel) of the objects of one shape: the middle 70 % of one
    of ``min(num_classes, 8)`` equal sectors, so neighbouring classes never share a hue."""
    sectors = min(num_classes, len(SHAPES))
    k = shape_index % sectors
    return (k + 0.15) / sectors, (k + 0.85) / sectors


def _appearance_frames(rng: np.random.Generator, label: int, num_classes: int,
                       num_frames: int, size: int) -> np.ndarray:
    """The class fixes the shape and its hue band (and the texture beyond 8 classes); motion
    is random."""
    shape_index = label % len(SHAPES)
    shape = SHAPES[shape_index]
    if num_classes > len(SHAPES):
        texture = TEXTURES[label // len(SHAPES)]
    else:
        texture = str(rng.choice(TEXTURES))  # <= 8 classes: the texture is noise
    scene = _Scene(rng, size, shape, texture, hue_band=appearance_hue_band(shape_index,
                                                                           num_classes))
    t = np.linspace(0.0, 1.0, num_frames)
    radius = rng.uniform(0.16, 0.24) * size
    start = rng.uniform(0.3 * size, 0.7 * size, 2)
    step = rng.normal(0.0, 0.25 * size, 2)  # random drift, any direction
    angle0, spin = rng.uniform(0, 2 * np.pi), rng.normal(0.0, 1.0)
    grow = rng.uniform(-0.3, 0.3)
    frames = []
    for ti in t:
        cx, cy = np.clip(start + step * ti, radius * 0.6, size - radius * 0.6)
        frames.append(scene.render(cx, cy, radius * (1 + grow * ti), angle0 + spin * ti))
    return np.stack(frames)


def _objects_frames(rng: np.random.Generator, label: int, num_classes: int, num_frames: int,
                    size: int) -> np.ndarray:
    """A video of the *first* class of pair ``label // 2``: its shape moves right, the other
    objects stand still; the second class is this reversed.

    The objects: the mover, the shapes of the other pairs (a random 3 of them beyond 4 pairs)
    and distractor shapes of no class up to ``MIN_OBJECTS``, each in its own horizontal lane
    (lanes shuffled, so a lane says nothing), coloured in its shape's family.
    """
    pairs = num_classes // 2
    mover = label // 2
    others = [s for s in range(pairs) if s != mover]
    n = min(max(MIN_OBJECTS, pairs), MAX_OBJECTS)
    shapes = [mover] + [int(s) for s in rng.choice(others, min(len(others), n - 1),
                                                   replace=False)]
    spare = [s for s in range(len(SHAPES)) if s >= pairs]
    shapes += [int(s) for s in rng.choice(spare, n - len(shapes), replace=False)]
    looks = [_Scene(rng, size, SHAPES[s], str(rng.choice(TEXTURES)),
                    hue_band=appearance_hue_band(s, len(SHAPES)), background=i == 0)
             for i, s in enumerate(shapes)]
    scene = looks[0]  # the mover, with the background the others are painted into
    lane = size / n
    lanes = rng.permutation(n)  # object i in lane lanes[i]
    radius = rng.uniform(0.36, 0.44, n) * lane
    cy = (lanes + 0.5 + rng.uniform(-0.05, 0.05, n)) * lane
    for i in range(1, n):
        cx = rng.uniform(radius[i], size - radius[i])
        looks[i].paint_into(scene, cx, cy[i], radius[i], rng.uniform(0, 2 * np.pi))
    dist = rng.uniform(0.45, 0.6) * size
    lo = radius[0] * 0.6 + dist / 2  # most of the mover stays inside the frame
    mid = rng.uniform(lo, size - lo)
    angle = rng.uniform(0, 2 * np.pi)
    t = np.linspace(0.0, 1.0, num_frames)  # (T,)
    return np.stack([scene.render(mid + (ti - 0.5) * dist, cy[0], radius[0], angle)
                     for ti in t])  # (T, S, S, 3)


def render_video(kind: str, label: int, index: int, *, num_classes: int, num_frames: int = 16,
                 size: int = 64, seed: int = 0) -> np.ndarray:
    """Frames ``uint8 (T, S, S, 3)`` of video ``index`` of class ``label`` (deterministic)."""
    rng = np.random.default_rng([seed, KINDS.index(kind), label, index])
    if kind == "temporal":
        _, _, motion, direction = TEMPORAL_PAIRS[label // 2]
        frames = _temporal_frames(rng, motion, direction, num_frames, size)
        return frames[::-1].copy() if label % 2 else frames  # class B = class A reversed
    if kind == "appearance":
        return _appearance_frames(rng, label, num_classes, num_frames, size)
    if kind == "objects":
        frames = _objects_frames(rng, label, num_classes, num_frames, size)
        return frames[::-1].copy() if label % 2 else frames  # class B = class A reversed
    raise ValueError(f"unknown synthetic kind {kind!r}; use one of {', '.join(KINDS)}")


def _make_one(job: tuple) -> str:
    path, kind, label, index, num_classes, num_frames, size, seed = job
    frames = render_video(kind, label, index, num_classes=num_classes, num_frames=num_frames,
                          size=size, seed=seed)
    tmp = f"{path}.tmp.mp4"
    write_video(tmp, frames)
    os.replace(tmp, path)  # never leave a half-written file under the final name
    return path


def generate(out_dir: str | os.PathLike, kind: str = "temporal", *, num_classes: int = 8,
             videos_per_class: int = 50, num_frames: int = 16, size: int = 64, seed: int = 0,
             val_fraction: float = 0.2, workers: int = 2, overwrite: bool = False) -> dict:
    """Write a synthetic dataset into ``out_dir``; returns an info dict.

    Info keys: ``root``, ``kind``, ``classes``, ``train_list``, ``val_list``, ``classes_file``,
    ``num_train``, ``num_val``, ``flip_label_map``, ``seconds`` (0 when reused), ``options``.
    """
    classes = class_names(kind, num_classes)
    if videos_per_class < 1 or num_frames < 2 or size < 16:
        raise ValueError(f"need videos_per_class >= 1, num_frames >= 2 and size >= 16, got "
                         f"{videos_per_class}, {num_frames}, {size}")
    if size % 2:
        raise ValueError(f"size must be even for H.264, got {size}")
    if not 0.0 <= val_fraction < 1.0:
        raise ValueError(f"val_fraction must be in [0, 1), got {val_fraction}")
    out = Path(out_dir)
    options = dict(kind=kind, num_classes=num_classes, videos_per_class=videos_per_class,
                   num_frames=num_frames, size=size, seed=seed, val_fraction=val_fraction,
                   version=VERSION)
    info = dict(root=str(out), kind=kind, classes=classes, train_list=str(out / "train.txt"),
                val_list=str(out / "val.txt"), classes_file=str(out / "classes.txt"),
                flip_label_map=flip_label_map(kind, num_classes), options=options)
    meta_file = out / "synth.json"
    n_val = int(round(videos_per_class * val_fraction))
    names = [(c, i, f"videos/c{c:02d}_{i:05d}.mp4") for c in range(num_classes)
             for i in range(videos_per_class)]
    if not overwrite and meta_file.is_file():
        try:
            same = json.loads(meta_file.read_text()).get("options") == options
        except ValueError:
            same = False
        if same and all((out / rel).is_file() for _, _, rel in names):
            n_train = sum(1 for _ in open(out / "train.txt"))
            return dict(info, num_train=n_train, num_val=len(names) - n_train, seconds=0.0)
    start = time.monotonic()
    (out / "videos").mkdir(parents=True, exist_ok=True)
    jobs = [(str(out / rel), kind, c, i, num_classes, num_frames, size, seed)
            for c, i, rel in names]
    if workers <= 1:
        for job in jobs:
            _make_one(job)
    else:
        with mp.get_context().Pool(workers) as pool:
            for _ in pool.imap_unordered(_make_one, jobs, chunksize=8):
                pass
    train = [f"{rel} {c}" for c, i, rel in names if i < videos_per_class - n_val]
    val = [f"{rel} {c}" for c, i, rel in names if i >= videos_per_class - n_val]
    (out / "train.txt").write_text("".join(line + "\n" for line in train))
    (out / "val.txt").write_text("".join(line + "\n" for line in val))
    (out / "classes.txt").write_text("".join(name + "\n" for name in classes))
    seconds = time.monotonic() - start
    info.update(num_train=len(train), num_val=len(val), seconds=seconds)
    meta_file.write_text(json.dumps({"options": options, "classes": classes,
                                     "flip_label_map": info["flip_label_map"]}, indent=2) + "\n")
    return info
