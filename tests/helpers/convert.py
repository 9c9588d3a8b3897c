"""Shared by the converter tests (tests/convert/): BN calibration that makes every channel
count, and the tiny TimeSformer whose state dicts stand for foreign checkpoints."""
from __future__ import annotations

import torch
from torch import nn

from vidcls.models import create_model


def calibrate(model: nn.Module, clip_shape, seed: int = 0) -> nn.Module:
    """Batch-norm statistics from random clips and random BN affine parameters, so every
    channel matters and a misplaced or permuted weight shows in the logits."""
    g = torch.Generator().manual_seed(seed)
    for m in model.modules():
        if isinstance(m, nn.BatchNorm2d):
            m.reset_running_stats()
            m.momentum = None
            m.weight.data.uniform_(0.5, 1.5, generator=g)
            m.bias.data.normal_(0, 0.2, generator=g)
    model.train()
    with torch.no_grad():
        model(torch.randn(*clip_shape, generator=g))
    for m in model.modules():
        if isinstance(m, nn.Linear):
            m.weight.data.normal_(0, m.weight.shape[1] ** -0.5, generator=g)
            m.bias.data.normal_(0, 0.1, generator=g)
    return model.eval()


TINY = dict(img_size=32, patch_size=16, embed_dim=32, depth=2, num_heads=2)


def tiny_timesformer(attention="divided", frames=4, classes=5, seed=0):
    torch.manual_seed(seed)
    model = create_model("timesformer_base", num_classes=classes, num_frames=frames,
                         attention=attention, **TINY).eval()
    with torch.no_grad():  # zero-initialised parts get values, so they count
        for name, p in model.named_parameters():
            if "_fc." in name or name == "time_embed":
                p.normal_(0, 0.2)
    return model


# ------------------------------------------------------------------ one file per format
def write_format_file(fmt: str, folder):
    """A small checkpoint of format ``fmt`` in its source's own layout under ``folder`` (the
    writers of ``tests/reference``); returns ``(path, options)``, the options its conversion
    needs (those no file of that format stores)."""
    from pathlib import Path

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    return _WRITERS[fmt](folder)


def _tsm_official(folder):
    from reference.tsm_repo import make_ref_resnet_tsm, save_main_py_checkpoints, store_name

    torch.manual_seed(0)
    ref = make_ref_resnet_tsm("blockres", n_segment=4, n_div=4, num_class=10).eval()
    name = store_name("something", "resnet18", num_segments=4, shift_div=4)
    return save_main_py_checkpoints(folder, name, ref), {}


def _tsm_mmaction2(folder):
    from reference.mmaction2_tsm import to_mmaction2_tsm

    torch.manual_seed(0)
    model = create_model("tsm_resnet18", num_classes=6, num_frames=4, shift_div=4).eval()
    config = ("model = dict(type='Recognizer2D', backbone=dict(type='ResNetTSM', depth=18, "
              "num_segments=4, shift_div=4), cls_head=dict(type='TSMHead', num_classes=6))")
    path = folder / "tsm_r18_1x1x4_kinetics_rgb.pth"
    torch.save({"meta": {"cfg": config}, "state_dict": to_mmaction2_tsm(model)}, path)
    return path, {}


def _tsm_paddle(folder):
    import pickle

    from reference.paddle_tsm import to_paddle

    torch.manual_seed(0)
    model = create_model("tsm_resnet50", num_classes=5, num_frames=4, shift_div=4).eval()
    params = to_paddle(model)
    path = folder / "ppTSM_k400_r50.pdparams"
    with open(path, "wb") as f:  # what paddle.save(state_dict) writes
        pickle.dump({**params, "StructuredToParameterName@@": {k: k for k in params}}, f,
                    protocol=4)
    return path, {"num_frames": 4}


def _timesformer_official(folder):
    from reference.timesformer_repo import reference_config, save_reference_pyth

    cfg = reference_config(DATA__NUM_FRAMES=4, DATA__SAMPLING_RATE=16, DATA__TRAIN_CROP_SIZE=32,
                           DATA__TEST_CROP_SIZE=32, MODEL__NUM_CLASSES=5)
    path = save_reference_pyth(folder / "TimeSformer_divST_4x16_32_K400.pyth",
                               tiny_timesformer("divided"), cfg)
    return path, {"num_heads": 2}


def _timesformer_hf(folder):
    from transformers import TimesformerConfig, TimesformerForVideoClassification

    torch.manual_seed(0)
    cfg = TimesformerConfig(image_size=32, patch_size=16, num_frames=4, hidden_size=32,
                            num_hidden_layers=2, num_attention_heads=2, intermediate_size=64,
                            num_labels=3)
    TimesformerForVideoClassification(cfg).eval().save_pretrained(folder / "hf")
    return folder / "hf", {}


def _timesformer_mmaction2(folder):
    from reference.mmaction2_timesformer import mma_timesformer_config, mma_timesformer_params

    path = folder / "timesformer_divST_8xb8-4x32x1-15e_kinetics400-rgb_20220815-a4d0d01f.pth"
    config = mma_timesformer_config(num_frames=4, img_size=32, num_heads=2, num_classes=5,
                                    clip_len=4, test_scale=32, crop_size=32)
    torch.save({"meta": {"cfg": config}, "state_dict": mma_timesformer_params()}, path)
    return path, {}


_WRITERS = {"tsm-official": _tsm_official, "tsm-mmaction2": _tsm_mmaction2,
            "tsm-paddle": _tsm_paddle, "timesformer-official": _timesformer_official,
            "timesformer-hf": _timesformer_hf, "timesformer-mmaction2": _timesformer_mmaction2}
#: the six video formats, each with a writer above
VIDEO_FORMATS = tuple(_WRITERS)
