"""Clip transforms: PIL as the interpolation reference, crop geometry, one draw per clip."""
from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

from vidcls.data.transforms import (TSM_SCALES, TestTransform, build_test_transform, build_train_transform, crop_resize,
                                    normalize, resize_short_side, to_clip_tensor)
from vidcls.models import IMAGENET

IMAGENET_MEAN, IMAGENET_STD = IMAGENET.mean, IMAGENET.std

DEVICES = ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])


def smooth_clip(t: int, h: int, w: int, seed: int = 0) -> np.ndarray:
    """``uint8 (t, h, w, 3)`` smooth content in [0, 200] plus 5 * frame index."""
    rng = np.random.default_rng(seed)
    small = rng.uniform(0, 200, (h // 8 + 1, w // 8 + 1, 3)).astype(np.float32)
    img = np.asarray(Image.fromarray(small.astype(np.uint8)).resize((w, h), Image.BILINEAR))
    return np.stack([img.astype(np.int32) + 5 * i for i in range(t)]).astype(np.uint8)


def pil_crop_resize(frame: np.ndarray, box, out_hw) -> np.ndarray:
    """Reference: crop whole pixels, then PIL's (antialiased) bilinear resize."""
    top, left, h, w = box
    im = Image.fromarray(frame[top:top + h, left:left + w])
    return np.asarray(im.resize((out_hw[1], out_hw[0]), Image.BILINEAR))


@pytest.mark.parametrize("box,out", [((10, 20, 150, 200), (112, 112)),
                                     ((0, 0, 240, 320), (60, 80)), ((5, 7, 50, 40), (100, 80))])
def test_crop_resize_matches_pil(box, out):
    rng = np.random.default_rng(0)
    frames = rng.integers(0, 256, (2, 240, 320, 3), dtype=np.uint8)
    got = crop_resize(to_clip_tensor(frames), box, out).permute(0, 2, 3, 1).numpy()
    for t in range(2):
        ref = pil_crop_resize(frames[t], box, out)
        diff = np.abs(got[t].astype(int) - ref.astype(int))
        assert diff.max() <= 1 and diff.mean() < 0.3, (diff.max(), diff.mean())


def test_resize_short_side_keeps_aspect():
    clip = to_clip_tensor(smooth_clip(2, 240, 320))
    assert resize_short_side(clip, 128).shape == (2, 3, 128, 171)
    clip = to_clip_tensor(smooth_clip(2, 320, 240))
    assert resize_short_side(clip, 128).shape == (2, 3, 171, 128)


def test_input_layouts_and_errors():
    frames = smooth_clip(3, 16, 24)
    a = to_clip_tensor(frames)
    assert a.shape == (3, 3, 16, 24) and a.dtype == torch.uint8
    assert torch.equal(to_clip_tensor(torch.from_numpy(frames)), a)
    assert torch.equal(to_clip_tensor(a), a)  # (T, 3, H, W) passes through
    with pytest.raises(ValueError, match="uint8"):
        to_clip_tensor(frames.astype(np.float32))
    with pytest.raises(ValueError, match=r"\(T, H, W, 3\)"):
        to_clip_tensor(frames[0])


@pytest.mark.parametrize("kind", ["multiscale", "random_resized", "resize_crop", "center"])
def test_one_random_draw_per_clip(kind):
    """Frames differ only by a constant offset; the same crop on every frame keeps it."""
    frames = smooth_clip(6, 120, 160)
    t = build_train_transform(kind, size=64, resize=96, flip=True,
                              **({"short_side": (96, 128)} if kind == "resize_crop" else {}))
    rng = np.random.default_rng(0)
    for _ in range(10):
        out = t(frames, rng).int()
        assert out.shape == (6, 3, 64, 64) and out.dtype == torch.int32
        for i in range(6):
            diff = out[i] - out[0] - 5 * i
            assert diff.abs().max() <= 1, (kind, i)


def tsm_multiscale_choices(image_w: int, image_h: int, input_size: int = 224,
                           scales=TSM_SCALES, max_distort: int = 1):
    """Every (top, left, h, w) TSM's GroupMultiScaleCrop (fix_crop, more_fix_crop) can pick."""
    base = min(image_w, image_h)
    sizes = [int(base * x) for x in scales]
    crop_h = [input_size if abs(x - input_size) < 3 else x for x in sizes]
    crop_w = [input_size if abs(x - input_size) < 3 else x for x in sizes]
    out = set()
    for i, h in enumerate(crop_h):
        for j, w in enumerate(crop_w):
            if abs(i - j) <= max_distort:
                ws, hs = (image_w - w) // 4, (image_h - h) // 4
                offsets = [(0, 0), (4 * ws, 0), (0, 4 * hs), (4 * ws, 4 * hs), (2 * ws, 2 * hs),
                           (0, 2 * hs), (4 * ws, 2 * hs), (2 * ws, 4 * hs), (2 * ws, 0),
                           (1 * ws, 1 * hs), (3 * ws, 1 * hs), (1 * ws, 3 * hs), (3 * ws, 3 * hs)]
                out |= {(oy, ox, h, w) for ox, oy in offsets}
    return out


def test_multiscale_crop_choices_are_tsms():
    t = build_train_transform("multiscale", size=224, resize=256)
    rng = np.random.default_rng(0)
    allowed = tsm_multiscale_choices(340, 256)
    seen = set()
    for _ in range(3000):
        short, box, flip = t.params(256, 340, rng)  # frame already at short side 256
        assert short == 256 and box in allowed and not flip
        seen.add(box)
    assert len(seen) > 0.9 * len(allowed)  # (nearly) every choice is reachable
    # a larger frame is first resized to short side 256: same choices
    short, box, _ = t.params(512, 680, np.random.default_rng(1))
    assert short == 256 and box in allowed


def test_random_resized_crop_area_and_ratio():
    t = build_train_transform("random_resized", size=112, resize=128)
    rng = np.random.default_rng(0)
    areas, ratios = [], []
    for _ in range(300):
        _, (top, left, h, w), _ = t.params(128, 128, rng)
        assert 0 <= top <= 128 - h and 0 <= left <= 128 - w
        areas.append(h * w / 128 ** 2)
        ratios.append(w / h)
    assert 0.07 <= min(areas) and max(areas) <= 1.0 and max(areas) > 0.7 and min(areas) < 0.2
    assert 0.7 <= min(ratios) and max(ratios) <= 1.4


def test_resize_crop_short_side_jitter():
    t = build_train_transform("resize_crop", size=64, resize=64, short_side=(64, 128))
    rng = np.random.default_rng(0)
    shorts = set()
    for _ in range(200):
        short, (top, left, h, w), _ = t.params(200, 300, rng)
        assert (h, w) == (64, 64) and top + 64 <= short and left + 64 <= round(300 * short / 200)
        shorts.add(short)
    assert min(shorts) < 70 and max(shorts) > 120
    with pytest.raises(ValueError, match="short_side"):
        build_train_transform("resize_crop", size=64, resize=64, short_side=(32, 128))


def test_flip_and_label_swap():
    frames = smooth_clip(4, 64, 64)
    t = build_train_transform("center", size=64, resize=64, flip=True, flip_label_map={0: 1})
    unflipped = build_train_transform("center", size=64, resize=64)(frames)
    rng = np.random.default_rng(0)
    outcomes = []
    for _ in range(40):
        out, label = t.with_label(frames, 0, rng)
        flipped = torch.equal(out, unflipped.flip(-1))
        assert flipped or torch.equal(out, unflipped)
        assert label == (1 if flipped else 0)
        outcomes.append(flipped)
        _, other = t.with_label(frames, 5, np.random.default_rng(0))
        assert other == 5  # not in the map: unchanged
    assert 10 < sum(outcomes) < 30
    _, swapped = t.with_label(frames, 1, np.random.default_rng(3))  # map is symmetric
    assert swapped in (0, 1)
    # flip is off unless asked for (direction datasets); a map without flip is an error
    t_default = build_train_transform("multiscale", size=32, resize=64)
    assert not any(t_default.params(64, 64, np.random.default_rng(i))[2] for i in range(50))
    with pytest.raises(ValueError, match="flip=False"):
        build_train_transform("multiscale", flip_label_map={0: 1})


def test_test_crops_geometry():
    h, w = 240, 320  # resized to 256 x 341 for resize=256
    assert TestTransform(224, 256, 1).boxes(h, w) == [((16, 58, 224, 224), False)]
    three = TestTransform(256, 256, 3).boxes(h, w)  # full-resolution 3 crops along the width
    assert [b for b, _ in three] == [(0, 0, 256, 256), (0, 42, 256, 256), (0, 85, 256, 256)]
    tall = TestTransform(256, 256, 3).boxes(w, h)  # portrait video: crops along the height
    assert [b[:2] for b, _ in tall] == [(0, 0), (42, 0), (85, 0)]
    ten = TestTransform(224, 256, 10).boxes(h, w)
    assert [f for _, f in ten] == [False] * 5 + [True] * 5
    assert [b for b, _ in ten[:5]] == [b for b, _ in ten[5:]]
    assert [b[:2] for b, _ in ten[:5]] == [(0, 0), (0, 117), (32, 0), (32, 117), (16, 58)]


def test_test_transform_outputs_against_pil():
    frames = smooth_clip(3, 120, 160)
    single = build_test_transform(96, 112, 1)(frames)
    assert single.shape == (3, 3, 96, 96)
    ten = build_test_transform(96, 112, 10)(frames)
    assert ten.shape == (10, 3, 3, 96, 96)
    assert torch.equal(ten[4], single)  # view 4 = centre crop
    assert torch.equal(ten[9], single.flip(-1))
    # naive reference: PIL resize of the whole frame to short side 112, then a centre crop
    for t in range(3):
        im = Image.fromarray(frames[t]).resize((149, 112), Image.BILINEAR)
        ref = np.asarray(im)[8:104, 26:122].astype(int)
        got = single[t].permute(1, 2, 0).numpy().astype(int)
        assert np.abs(got - ref).max() <= 1
    with pytest.raises(ValueError, match="num_crops"):
        build_test_transform(96, 112, 5)


@pytest.mark.parametrize("device", DEVICES)
def test_normalize(device):
    clip = torch.randint(0, 256, (2, 4, 3, 8, 8), dtype=torch.uint8, device=device)
    out = normalize(clip, IMAGENET_MEAN, IMAGENET_STD)
    assert out.dtype == torch.float32 and out.device == clip.device
    for c in range(3):
        ref = (clip[:, :, c].float() / 255 - IMAGENET_MEAN[c]) / IMAGENET_STD[c]
        torch.testing.assert_close(out[:, :, c], ref)
    as_float = normalize(clip.float() / 255, (0.45,) * 3, (0.225,) * 3)
    torch.testing.assert_close(as_float, (clip.float() / 255 - 0.45) / 0.225)
    with pytest.raises(ValueError, match=r"\(\.\.\., 3, H, W\)"):
        normalize(clip.permute(0, 1, 3, 4, 2), IMAGENET_MEAN, IMAGENET_STD)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a GPU")
def test_transforms_run_on_gpu_and_match_cpu():
    frames = torch.from_numpy(smooth_clip(4, 120, 160))
    t = build_train_transform("multiscale", size=64, resize=96, flip=True)
    cpu = t(frames, np.random.default_rng(0)).int()
    gpu = t(frames.cuda(), np.random.default_rng(0))
    assert gpu.is_cuda
    assert (gpu.cpu().int() - cpu).abs().max() <= 1
