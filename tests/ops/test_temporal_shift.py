"""The temporal shift against a per-frame reference written from the TSM definition."""
from __future__ import annotations

import warnings

import numpy as np
import pytest
import torch

from vidcls.models.mobilenetv2 import InvertedResidual
from vidcls.models.resnet import BasicBlock, Bottleneck
from vidcls.ops import TemporalShift, temporal_shift
from reference.tsm_shift import temporal_shift_reference_style


def naive_shift(x: torch.Tensor, num_frames: int, shift_div: int, bidirectional: bool) -> torch.Tensor:
    """Definition, frame by frame: bidirectional -> channels [0, fold) from t+1, [fold, 2 fold)
    from t-1; unidirectional -> [0, fold) from t-1; missing frames are zeros."""
    nt, c, h, w = x.shape
    x5 = x.reshape(nt // num_frames, num_frames, c, h, w)
    fold = c // shift_div
    out = torch.zeros_like(x5)
    for n in range(x5.shape[0]):
        for t in range(num_frames):
            out[n, t] = x5[n, t]
            if bidirectional:
                out[n, t, :fold] = x5[n, t + 1, :fold] if t + 1 < num_frames else 0
                out[n, t, fold:2 * fold] = x5[n, t - 1, fold:2 * fold] if t > 0 else 0
            else:
                out[n, t, :fold] = x5[n, t - 1, :fold] if t > 0 else 0
    return out.reshape(nt, c, h, w)


@pytest.mark.filterwarnings("ignore:`torch.jit.trace` is deprecated:DeprecationWarning")
@pytest.mark.parametrize("bidirectional", [True, False])
@pytest.mark.parametrize("shift_div", [2, 4, 8, 16])
@pytest.mark.parametrize("channels", [16, 20, 7])  # 20 and 7 are not divisible by 8 / 16
def test_shift_matches_definition(channels, shift_div, bidirectional):
    torch.manual_seed(0)
    x = torch.randn(2 * 5, channels, 3, 4)
    ref = naive_shift(x, 5, shift_div, bidirectional)
    before = x.clone()
    out = temporal_shift(x, 5, shift_div, bidirectional)
    torch.testing.assert_close(out, ref, rtol=0, atol=0)
    torch.testing.assert_close(x, before, rtol=0, atol=0)  # input untouched
    # the export path (cat of slices) traced, then run on another input
    traced = torch.jit.trace(lambda t: temporal_shift(t, 5, shift_div, bidirectional), x)
    x2 = torch.randn(3 * 5, channels, 3, 4)
    torch.testing.assert_close(traced(x2), naive_shift(x2, 5, shift_div, bidirectional),
                               rtol=0, atol=0)


def test_shift_moves_the_documented_amount():
    # 1/8 each way for shift_div=8: a quarter of the channels change, the rest are identical.
    x = torch.randn(8, 64, 2, 2) + 10
    out = temporal_shift(x, 4, 8)
    changed = (out != x).flatten(2).any(-1).any(0)  # per channel
    assert changed[:16].all() and not changed[16:].any()


def test_single_frame_clip_zeroes_moved_channels():
    x = torch.randn(3, 16, 2, 2)
    out = temporal_shift(x, 1, 8)
    assert out[:, :4].abs().sum() == 0
    torch.testing.assert_close(out[:, 4:], x[:, 4:])


def test_reference_style_implementation_agrees():
    x = torch.randn(16, 24, 5, 5)
    torch.testing.assert_close(temporal_shift_reference_style(x, 8, 8), naive_shift(x, 8, 8, True))


@pytest.mark.parametrize("bidirectional", [True, False])
def test_gradients_flow(bidirectional):
    x = torch.randn(2 * 3, 9, 2, 2, dtype=torch.double, requires_grad=True)
    fn = lambda t: temporal_shift(t, 3, 4, bidirectional)  # noqa: E731
    assert torch.autograd.gradcheck(fn, (x,))
    assert torch.autograd.gradgradcheck(fn, (x,))
    # and the gradient equals autograd through the definition
    g = torch.randn(6, 9, 2, 2, dtype=torch.double)
    (ours,) = torch.autograd.grad(fn(x), x, g)
    (ref,) = torch.autograd.grad(naive_shift(x, 3, 4, bidirectional), x, g)
    torch.testing.assert_close(ours, ref)


def test_channels_last_and_non_contiguous_inputs():
    x = torch.randn(8, 16, 5, 6)
    ref = naive_shift(x, 4, 8, True)
    cl = x.contiguous(memory_format=torch.channels_last)
    out = temporal_shift(cl, 4, 8)
    assert out.is_contiguous(memory_format=torch.channels_last)
    torch.testing.assert_close(out, ref)
    strided = x.transpose(2, 3).contiguous().transpose(2, 3)  # same values, odd strides
    torch.testing.assert_close(temporal_shift(strided, 4, 8), ref)


def test_bad_arguments_are_clear():
    with pytest.raises(ValueError, match=r"\(N\*T, C, H, W\)"):
        temporal_shift(torch.randn(4, 8, 3), 2)
    with pytest.raises(ValueError, match="shift_div"):
        temporal_shift(torch.randn(4, 8, 3, 3), 2, shift_div=1)
    with pytest.raises(ValueError, match="num_frames=3"):
        temporal_shift(torch.randn(4, 8, 3, 3), 3)
    with pytest.raises(ValueError, match="shift mode"):
        TemporalShift(8, 8, "sideways")


class _ShiftConv(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.conv = torch.nn.Conv2d(16, 8, 3, padding=1)

    def forward(self, x):
        return self.conv(temporal_shift(x, 4, 8))


@pytest.mark.parametrize("dynamo", [False, True])
def test_onnx_export_without_tracer_warnings_dynamic_batch(tmp_path, dynamo):
    """The legacy TorchScript tracer (dynamo=False) must not warn; torch.export (the default
    in torch >= 2.9) must work too. Both keep a dynamic N*T dimension."""
    ort = pytest.importorskip("onnxruntime")
    model = _ShiftConv().eval()
    x = torch.randn(2 * 4, 16, 6, 6)
    path = tmp_path / "shift.onnx"
    with warnings.catch_warnings():
        warnings.simplefilter("error", torch.jit.TracerWarning)
        warnings.simplefilter("ignore", DeprecationWarning)  # the legacy exporter announces itself
        warnings.simplefilter("ignore", FutureWarning)
        if dynamo:
            torch.onnx.export(model, (x,), path, dynamo=True, input_names=["x"],
                              dynamic_shapes={"x": {0: torch.export.Dim("nt")}})
        else:
            torch.onnx.export(model, (x,), path, dynamo=False, input_names=["x"],
                              output_names=["y"], dynamic_axes={"x": {0: "nt"}, "y": {0: "nt"}})
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    for clips in (1, 3):
        xi = torch.randn(clips * 4, 16, 6, 6)
        (got,) = session.run(None, {"x": xi.numpy()})
        with torch.no_grad():
            want = model(xi).numpy()
        np.testing.assert_allclose(got, want, atol=1e-5, rtol=0)


# ------------------------------------------------------------------ placement inside blocks
def _silence_branch(block):
    """Zero the last BN of the residual branch: the block output is then relu(identity path)."""
    last_bn = block.bn2 if isinstance(block, BasicBlock) else (
        block.bn3 if isinstance(block, Bottleneck) else block.conv[-1])
    torch.nn.init.zeros_(last_bn.weight)
    torch.nn.init.zeros_(last_bn.bias)


def _first_conv(block):
    return block.conv[0] if isinstance(block, InvertedResidual) else block.conv1


@pytest.mark.parametrize("make_block", [
    lambda: BasicBlock(16, 16), lambda: Bottleneck(16, 4), lambda: InvertedResidual(16, 16, 1, 6)],
    ids=["basic", "bottleneck", "inverted_residual"])
@pytest.mark.parametrize("place", ["residual", "inplace"])
def test_residual_placement_leaves_identity_unshifted(make_block, place):
    torch.manual_seed(0)
    block = make_block().eval()
    _silence_branch(block)
    shift = TemporalShift(16, 8, "bidirectional", num_frames=4)
    if place == "residual":
        block.shift_branch = shift
    else:
        block.shift_main = shift
    seen = {}
    _first_conv(block).register_forward_pre_hook(lambda m, args: seen.update(x=args[0].clone()))
    x = torch.randn(8, 16, 5, 5).abs() + 0.1  # positive: relu(identity) == identity
    with torch.no_grad():
        out = block(x)
    shifted = naive_shift(x, 4, 8, True)
    torch.testing.assert_close(seen["x"], shifted)  # the branch always sees the shifted input
    identity_path = x if place == "residual" else shifted
    torch.testing.assert_close(out, identity_path, atol=1e-6, rtol=0)


def test_downsample_path_unshifted_with_residual_placement():
    block = Bottleneck(16, 8, stride=2, downsample=torch.nn.Sequential(
        torch.nn.Conv2d(16, 32, 1, 2, bias=False), torch.nn.BatchNorm2d(32))).eval()
    block.shift_branch = TemporalShift(16, 8, num_frames=2)
    seen = {}
    block.downsample.register_forward_pre_hook(lambda m, args: seen.update(x=args[0]))
    x = torch.randn(4, 16, 6, 6)
    with torch.no_grad():
        block(x)
    torch.testing.assert_close(seen["x"], x, rtol=0, atol=0)


def test_compilers_get_the_functional_form_with_the_same_result(monkeypatch):
    """Under torch.compile the shift is the slice + cat form (fusable, no in-place copies that
    would break the graph); it must equal the eager function in both modes and layouts."""
    x = torch.randn(2 * 4, 16, 3, 3)
    eager = {(b, cl): temporal_shift(x.contiguous(memory_format=cl), 4, 4, b)
             for b in (True, False) for cl in (torch.contiguous_format, torch.channels_last)}
    monkeypatch.setattr(torch.compiler, "is_compiling", lambda: True)
    for (b, cl), want in eager.items():
        assert torch.equal(temporal_shift(x.contiguous(memory_format=cl), 4, 4, b), want)


@pytest.mark.parametrize("bidirectional", [True, False])
def test_in_place_shift_is_the_shift_and_is_undone(bidirectional):
    """Inference shifts a residual block's input in place around its first conv: the conv
    sees exactly temporal_shift(x), and x is bit-identical afterwards, also when the branch
    raises; autograd, channels_last and the export path keep the out-of-place shift."""
    from vidcls.ops.temporal_shift import branch_on_shifted

    shift = TemporalShift(16, 4, "bidirectional" if bidirectional else "unidirectional",
                          num_frames=4)
    x = torch.randn(8, 16, 5, 5)
    before = x.clone()
    with torch.no_grad():
        assert shift.can_shift_in_place(x)
        seen = branch_on_shifted(lambda t: t.clone(), shift, x)
        assert torch.equal(seen, temporal_shift(before, 4, 4, bidirectional))
        assert torch.equal(x, before)

        def failing(t):
            raise RuntimeError("branch failed")
        with pytest.raises(RuntimeError, match="branch failed"):
            branch_on_shifted(failing, shift, x)
        assert torch.equal(x, before)
        assert not shift.can_shift_in_place(x.contiguous(memory_format=torch.channels_last))
        assert not shift.can_shift_in_place(x[:6])  # not whole clips of 4 frames
    assert not shift.can_shift_in_place(x)  # autograd needs the unshifted input


def test_in_place_shift_gives_a_tsm_the_plain_logits():
    from vidcls.models import create_model

    torch.manual_seed(0)
    model = create_model("tsm_resnet18", num_classes=5, num_frames=4).eval()
    x = torch.randn(2, 4, 3, 32, 32)
    plain = model(x)  # autograd on: out-of-place shift
    with torch.no_grad():
        fast = model(x)
    assert torch.equal(fast, plain.detach())


@pytest.mark.parametrize("mode", ["bidirectional", "unidirectional"])
@pytest.mark.parametrize("bias", [True, False])
def test_1x1_conv_on_shifted_channels_last_input_equals_conv_of_the_shift(mode, bias):
    """channels_last inference: a 1x1 conv after the shift runs as GEMMs over frame-shifted
    row blocks (no shifted tensor); it must equal conv(shift(x)) for several clips, in fp32
    and bf16 autocast, and leave x untouched."""
    from torch import nn

    from vidcls.ops.temporal_shift import branch_on_shifted

    torch.manual_seed(0)
    conv = nn.Conv2d(24, 10, 1, bias=bias)
    shift = TemporalShift(24, 4, mode, num_frames=3)
    x = torch.randn(6, 24, 4, 5).contiguous(memory_format=torch.channels_last)
    before = x.clone()
    with torch.no_grad():
        fast = shift.conv1x1_on_shifted(conv, x)
        assert fast is not None and fast.is_contiguous(memory_format=torch.channels_last)
        torch.testing.assert_close(fast, conv(shift(x)), atol=1e-5, rtol=1e-5)
        torch.testing.assert_close(branch_on_shifted(conv, shift, x), conv(shift(x)),
                                   atol=1e-5, rtol=1e-5)
        assert torch.equal(x, before)
        xb = x.bfloat16()
        with torch.autocast("cpu", torch.bfloat16):
            fast_bf16, ref_bf16 = shift.conv1x1_on_shifted(conv, xb), conv(shift(xb))
        assert fast_bf16.dtype == ref_bf16.dtype == torch.bfloat16
        torch.testing.assert_close(fast_bf16.float(), ref_bf16.float(), atol=0.05, rtol=0.05)
        # Not applicable: NCHW input (shifted in place instead), a strided or 3x3 conv, part
        # of a clip.
        assert shift.conv1x1_on_shifted(conv, x.contiguous()) is None
        assert shift.conv1x1_on_shifted(nn.Conv2d(24, 10, 1, stride=2), x) is None
        assert shift.conv1x1_on_shifted(nn.Conv2d(24, 10, 3, padding=1), x) is None
        assert shift.conv1x1_on_shifted(conv, x[:4]) is None
    assert shift.conv1x1_on_shifted(conv, x) is None  # autograd: the plain path


def test_channels_last_tsm_inference_gives_the_plain_logits():
    from vidcls.models import create_model

    torch.manual_seed(0)
    model = create_model("tsm_resnet50", num_classes=5, num_frames=4).eval()
    model = model.to(memory_format=torch.channels_last)
    x = torch.randn(2, 4, 3, 32, 32)
    plain = model(x)  # autograd on: out-of-place shift, plain convolutions
    with torch.no_grad():
        fast = model(x)
    torch.testing.assert_close(fast, plain.detach(), atol=1e-4, rtol=1e-4)
