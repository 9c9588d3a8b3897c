"""The fast inference path (channels_last CNNs, bf16 where native) gives the plain fp32 NCHW
path's answers: logits within float tolerance for the layout, the same top-1 on >= 99 % of
clips for bf16 (max probability difference reported)."""
from __future__ import annotations

import copy

import pytest
import torch

from helpers.models import calibrated_model, tiny_model
from vidcls.engine.inference import prepare_for_inference
from vidcls.engine.runtime import native_bf16, resolve_precision

CPU = torch.device("cpu")


def test_auto_precision_follows_the_hardware_and_bad_choices_are_errors(monkeypatch):
    monkeypatch.delenv("VIDCLS_PRECISION")
    assert resolve_precision("auto", CPU) == ("bf16" if native_bf16(CPU) else "fp32")
    assert resolve_precision("bf16", CPU) == "bf16"
    with pytest.raises(ValueError, match="fp16 needs a CUDA"):
        resolve_precision("fp16", CPU)
    with pytest.raises(ValueError, match="unknown precision"):
        resolve_precision("int3", CPU)


def test_vidcls_precision_replaces_what_auto_picks(monkeypatch):
    monkeypatch.setenv("VIDCLS_PRECISION", "bf16")
    assert resolve_precision("auto", CPU) == "bf16"
    assert resolve_precision("fp32", CPU) == "fp32"  # an explicit choice wins
    monkeypatch.setenv("VIDCLS_PRECISION", "fp16")
    with pytest.raises(ValueError, match="fp16 needs a CUDA"):
        resolve_precision("auto", CPU)
    monkeypatch.setenv("VIDCLS_PRECISION", "half")
    with pytest.raises(ValueError, match="VIDCLS_PRECISION='half' is not a precision"):
        resolve_precision("auto", CPU)


@pytest.mark.parametrize("name", ["tsm_resnet18", "tsn_mobilenetv2", "tsm_resnet50",
                                  "tsm_mobilenetv2"])
def test_folded_batchnorm_gives_the_plain_logits(name):
    """prepare_for_inference(fold_batchnorm=True): no BatchNorm2d left, same logits (fp32
    tolerance) and top-1 as the unfolded NCHW model, also in bf16 (same top-1)."""
    plain = calibrated_model(name, num_classes=5)
    fast = copy.deepcopy(plain)
    prepare_for_inference(fast, CPU, "fp32", fold_batchnorm=True)
    assert not any(isinstance(m, torch.nn.BatchNorm2d) for m in fast.modules())
    x = torch.randn(3, 4, 3, 32, 32, generator=torch.Generator().manual_seed(2))
    with torch.no_grad():
        a, b = plain(x), fast(x)
        with torch.autocast("cpu", dtype=torch.bfloat16):
            c, d = fast(x).float(), plain(x).float()
    torch.testing.assert_close(b, a, atol=1e-3, rtol=1e-3)  # ResNet-50: 50 layers of rounding
    assert torch.equal(a.argmax(1), b.argmax(1))
    assert torch.equal(a.argmax(1), c.argmax(1))
    # bf16 rounds the folded weights and biases, not the batch-norm outputs: another error,
    # of the same order (the top-1 agreement on many clips is the next test)
    folded_err = (a.softmax(1) - c.softmax(1)).abs().max()
    unfolded_err = (a.softmax(1) - d.softmax(1)).abs().max()
    print(f"{name} bf16 max |prob diff| vs fp32: folded {folded_err:.3f}, "
          f"unfolded {unfolded_err:.3f}")
    assert folded_err < 0.25


def test_a_model_passed_to_the_predictor_stays_trainable(tmp_path):
    from vidcls.engine.checkpoint import save_model_checkpoint
    from vidcls.inference.predict import Predictor

    model = calibrated_model("tsm_resnet18", num_classes=5)
    ckpt = save_model_checkpoint(tmp_path / "c", model)
    loaded = Predictor(ckpt, precision="fp32")
    assert not any(isinstance(m, torch.nn.BatchNorm2d) for m in loaded.model.modules())
    passed = Predictor(model=model, meta=loaded.meta, precision="fp32")
    assert any(isinstance(m, torch.nn.BatchNorm2d) for m in passed.model.modules())


@pytest.mark.parametrize("name", ["tsm_resnet18", "tsn_mobilenetv2", "tsm_resnet50"])
def test_channels_last_cnn_gives_the_plain_logits(name):
    plain = calibrated_model(name, num_classes=5)
    fast = copy.deepcopy(plain)
    assert prepare_for_inference(fast, CPU, "fp32") == "fp32"
    conv = next(m for m in fast.backbone.modules() if isinstance(m, torch.nn.Conv2d))
    assert conv.weight.is_contiguous(memory_format=torch.channels_last)
    x = torch.randn(3, 4, 3, 32, 32, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        a, b = plain(x), fast(x)
    torch.testing.assert_close(b, a, atol=1e-4, rtol=1e-4)
    assert torch.equal(a.argmax(1), b.argmax(1))


def test_timesformer_keeps_its_layout():
    model = tiny_model("timesformer_base")
    prepare_for_inference(model, CPU, "fp32")
    assert model.patch_embed.proj.weight.is_contiguous()


def test_bf16_agrees_with_fp32_on_the_top1_of_99_percent_of_clips():
    model = calibrated_model("tsm_resnet18", num_classes=10)
    prepare_for_inference(model, CPU, "fp32", fold_batchnorm=True)  # the predict path's form
    clips = torch.randn(200, 4, 3, 32, 32, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        p32 = torch.cat([model(c).softmax(1) for c in clips.split(50)])
        with torch.autocast("cpu", dtype=torch.bfloat16):
            p16 = torch.cat([model(c).float().softmax(1) for c in clips.split(50)])
    same = p32.argmax(1) == p16.argmax(1)
    top2 = p32.topk(2, dim=1).values
    decisive = (top2[:, 0] - top2[:, 1]) > 0.02  # random clips: near-ties are either answer
    agree, agree_decisive = same.float().mean().item(), same[decisive].float().mean().item()
    max_diff = (p32 - p16).abs().max().item()
    print(f"bf16 vs fp32: top-1 agreement {100 * agree:.1f} % ({100 * agree_decisive:.1f} % of "
          f"the {int(decisive.sum())} clips with a top-2 gap > 0.02), max |prob diff| "
          f"{max_diff:.3f}")
    assert agree_decisive >= 0.99 and agree >= 0.97 and max_diff < 0.1


def test_predictor_precision_choices_agree(tmp_path):
    from helpers.videos import encode, moving_frames
    from vidcls.engine.checkpoint import save_model_checkpoint
    from vidcls.inference.predict import Predictor

    ckpt = save_model_checkpoint(tmp_path / "c", calibrated_model("tsm_resnet18", num_classes=5))
    video = encode(tmp_path / "v.mp4", moving_frames(8, 32, 32))
    fp32 = Predictor(ckpt, precision="fp32")([video], top_k=5)[0]["predictions"]
    bf16 = Predictor(ckpt, precision="bf16")([video], top_k=5)[0]["predictions"]
    assert Predictor(ckpt).precision == resolve_precision("auto", CPU) == "fp32"  # pinned
    assert fp32[0]["label"] == bf16[0]["label"]
    assert abs(fp32[0]["probability"] - bf16[0]["probability"]) < 0.05


def test_split_k_shifted_1x1_convs_in_bf16_are_as_close_to_fp32_as_plain_bf16(monkeypatch):
    """TSM-R50 in channels_last runs each bottleneck's shift + 1x1 conv as three GEMMs whose
    partial sums are rounded to bf16 in between: over 100 clips its bf16 answers must be as
    close to fp32 as those of the plain bf16 path (shifted copy, one convolution). 100 clips:
    bf16 is emulated (slow) on AVX2 machines."""
    from vidcls.ops.temporal_shift import TemporalShift

    model = calibrated_model("tsm_resnet50", num_classes=10)
    prepare_for_inference(model, CPU, "fp32", fold_batchnorm=True)
    clips = torch.randn(100, 4, 3, 32, 32, generator=torch.Generator().manual_seed(0))

    def probs(bf16: bool) -> torch.Tensor:
        with torch.no_grad(), torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
            return torch.cat([model(c).float().softmax(1) for c in clips.split(50)])

    p32, split_k = probs(False), probs(True)
    monkeypatch.setattr(TemporalShift, "conv1x1_on_shifted", lambda self, conv, x: None)
    plain = probs(True)
    for name, p in (("split-K", split_k), ("plain", plain)):
        print(f"{name} bf16 vs fp32: top-1 agreement "
              f"{100 * (p.argmax(1) == p32.argmax(1)).float().mean():.1f} %, mean |prob diff| "
              f"{(p - p32).abs().mean():.4f}")
    agree = lambda p: (p.argmax(1) == p32.argmax(1)).float().mean().item()  # noqa: E731
    assert agree(split_k) >= min(0.99, agree(plain) - 0.01)
    assert (split_k - p32).abs().mean() <= 1.25 * (plain - p32).abs().mean() + 1e-3
