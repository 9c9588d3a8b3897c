"""InferenceLinear (cached autocast-dtype weights) and the MLP's scratch-buffer inference path:
bit-identical to what autocast / the plain path compute, never stale after a weight change,
and never used where autograd or a compiler is watching."""
from __future__ import annotations

import threading

import torch
import torch.nn.functional as F
from torch import nn

from vidcls.models.inference_linear import InferenceLinear
from vidcls.models.timesformer import TimeSformer
from vidcls.models.vit_layers import Mlp

TINY = dict(img_size=32, patch_size=8, embed_dim=32, depth=2, num_heads=4)


def test_same_parameters_and_state_dict_as_nn_linear():
    torch.manual_seed(0)
    ours = InferenceLinear(8, 5)
    plain = nn.Linear(8, 5)
    plain.load_state_dict(ours.state_dict())
    assert list(ours.state_dict()) == ["weight", "bias"]
    assert isinstance(ours, nn.Linear)
    x = torch.randn(3, 8)
    torch.testing.assert_close(ours(x), plain(x), rtol=0, atol=0)


def test_autocast_inference_is_bit_identical_and_cast_once():
    torch.manual_seed(0)
    layer = InferenceLinear(64, 48).eval()
    x = torch.randn(10, 64)
    with torch.no_grad(), torch.autocast("cpu", torch.bfloat16):
        expected = F.linear(x, layer.weight, layer.bias)  # autocast's own per-call cast
        first = layer(x)
        w1, _ = layer.compute_weights()
        w2, _ = layer.compute_weights()
    assert first.dtype == torch.bfloat16 and w1.dtype == torch.bfloat16
    assert w1 is w2  # kept between calls
    assert torch.equal(first, expected)


def bf16_linear(x, layer):
    """What autocast computes, cast by hand (autocast's own cache would be stale within one
    autocast region after an in-place weight change: it is keyed on the tensor, not its
    version)."""
    return F.linear(x.bfloat16(), layer.weight.bfloat16(), layer.bias.bfloat16())


def test_weight_change_forms_the_copy_again():
    torch.manual_seed(0)
    layer = InferenceLinear(16, 4).eval()
    x = torch.randn(2, 16)
    opt = torch.optim.SGD(layer.parameters(), lr=0.5)
    with torch.no_grad(), torch.autocast("cpu", torch.bfloat16):
        assert torch.equal(layer(x), bf16_linear(x, layer))
    layer(x).sum().backward()  # autograd: plain path, gradients flow to the fp32 weight
    assert layer.weight.grad is not None
    opt.step()
    other = InferenceLinear(16, 4).eval()
    with torch.no_grad(), torch.autocast("cpu", torch.bfloat16):
        assert torch.equal(layer(x), bf16_linear(x, layer))  # after the optimiser step
        other(x)  # a copy of other's own init, about to go stale
        other.load_state_dict(layer.state_dict())
        assert torch.equal(other(x), bf16_linear(x, layer))
        layer.bias.add_(1.0)
        assert torch.equal(layer(x), bf16_linear(x, layer))
        layer.to(torch.float64).to(torch.float32)  # new storage
        assert torch.equal(layer(x), bf16_linear(x, layer))
    with torch.no_grad(), torch.autocast("cpu", torch.float16):
        assert layer.compute_weights()[0].dtype == torch.float16


def test_no_copy_without_autocast_in_training_or_under_autograd():
    layer = InferenceLinear(8, 8)
    x = torch.randn(2, 8)
    with torch.no_grad():
        assert layer.compute_weights()[0] is layer.weight  # no autocast
    with torch.autocast("cpu", torch.bfloat16):
        assert layer.compute_weights()[0] is layer.weight  # autograd on
        layer.eval()
        assert layer.compute_weights()[0] is layer.weight
        with torch.no_grad():
            assert layer.compute_weights()[0] is not layer.weight
            layer.train()  # drops the copy: a training model holds no extra memory
            assert layer._cast is None
            assert layer.compute_weights()[0] is layer.weight
    layer.eval()
    with torch.no_grad(), torch.autocast("cpu", torch.bfloat16):
        assert layer(x).dtype == torch.bfloat16


def test_mlp_inference_path_equals_plain_path_fp32_and_bf16():
    torch.manual_seed(0)
    mlp = Mlp(32, 96).eval()
    x = torch.randn(2, 7, 32)
    plain = mlp.fc2(mlp.act(mlp.fc1(x)))  # autograd on: the plain path
    with torch.no_grad():
        torch.testing.assert_close(mlp(x), plain.detach(), rtol=0, atol=0)
        with torch.autocast("cpu", torch.bfloat16):
            ref = F.linear(F.gelu(F.linear(x, mlp.fc1.weight, mlp.fc1.bias)), mlp.fc2.weight,
                           mlp.fc2.bias)
            out = mlp(x)
            out_other_shape = mlp(x[:1])  # the buffer is resized, not misused
    assert out.dtype == torch.bfloat16 and out.shape == (2, 7, 32)
    # addmm into the buffer vs F.linear: the same bf16 GEMM on this CPU kind; allow one bf16
    # step where another kind's kernels round differently.
    torch.testing.assert_close(out.float(), ref.float(), atol=2e-2, rtol=1e-2)
    torch.testing.assert_close(out_other_shape, out[:1], rtol=0, atol=0)
    tanh = Mlp(32, 96).eval()
    tanh.act = nn.GELU(approximate="tanh")
    with torch.no_grad():
        torch.testing.assert_close(tanh(x), tanh.fc2(F.gelu(tanh.fc1(x), approximate="tanh")))


def test_mlp_scratch_buffer_is_per_thread():
    """Concurrent forward passes (a server's worker threads) must not share the hidden buffer."""
    torch.manual_seed(0)
    mlp = Mlp(32, 256).eval()
    inputs = [torch.randn(64, 32) * (i + 1) for i in range(4)]
    with torch.no_grad():
        expected = [mlp(x) for x in inputs]
    results, errors = {}, []

    def work(i):
        try:
            with torch.no_grad():
                for _ in range(20):
                    out = mlp(inputs[i])
                    if not torch.allclose(out, expected[i], atol=1e-5, rtol=1e-5):
                        raise AssertionError(f"thread {i} got another thread's values")
            results[i] = True
        except Exception as e:  # noqa: BLE001 - reported below
            errors.append(e)

    threads = [threading.Thread(target=work, args=(i,)) for i in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors and len(results) == 4


def test_timesformer_bf16_inference_equals_autocast_of_the_plain_model():
    """The whole model: cached casts + scratch MLP under autocast give the logits of the same
    model run on its fp32 path under autocast (with autograd on), to bf16 rounding."""
    torch.manual_seed(0)
    model = TimeSformer(num_classes=5, **TINY).eval()
    x = torch.randn(2, 4, 3, 32, 32)
    with torch.autocast("cpu", torch.bfloat16):
        ref = model(x).detach()
        with torch.no_grad():
            out = model(x)
            again = model(x)
    assert torch.equal(out, again)
    torch.testing.assert_close(out.float(), ref.float(), atol=0.05, rtol=0.05)
    assert out.argmax(-1).tolist() == ref.argmax(-1).tolist()


def test_copies_and_pickles_carry_no_cached_weights():
    import copy
    import io
    torch.manual_seed(0)
    model = TimeSformer(num_classes=5, **TINY).eval()
    x = torch.randn(2, 4, 3, 32, 32)
    with torch.no_grad(), torch.autocast("cpu", torch.bfloat16):
        expected = model(x)
    assert model.blocks[0].mlp.fc1._cast is not None and model.blocks[0]._fused
    clone = copy.deepcopy(model)
    buf = io.BytesIO()
    torch.save(model, buf)
    buf.seek(0)
    loaded = torch.load(buf, weights_only=False)
    for other in (clone, loaded):
        assert other.blocks[0].mlp.fc1._cast is None and not other.blocks[0]._fused
        with torch.no_grad(), torch.autocast("cpu", torch.bfloat16):
            assert torch.equal(other(x), expected)
    assert model.blocks[0].mlp.fc1._cast is not None  # the original keeps its copy
