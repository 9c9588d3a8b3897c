"""Online TSM: streaming frame by frame equals the offline unidirectional model."""
from __future__ import annotations

import warnings

import numpy as np
import pytest
import torch

from vidcls.models import create_model
from vidcls.ops import TemporalShift
from vidcls.models.online_tsm import OnlineTSM, online_shift_step


def _randomize(model: torch.nn.Module, size: int = 32, seed: int = 0) -> torch.nn.Module:
    """Calibrate batch-norm statistics on random clips (so activations stay input-dependent
    through a randomly initialised network) and give the head visible logits: then a wrong
    shift or cache shows up in the logits."""
    g = torch.Generator().manual_seed(seed)
    for m in model.modules():
        if isinstance(m, torch.nn.BatchNorm2d):
            m.reset_running_stats()
            m.momentum = None  # cumulative average over the calibration batches
    model.train()
    with torch.no_grad():
        model(torch.randn(2, 4, 3, size, size, generator=g))
    head = model.head.weight
    head.data.copy_(torch.randn(head.shape, generator=g) / head.shape[1] ** 0.5)
    return model.eval()


CASES = [("tsm_resnet18", "residual", 32), ("tsm_resnet18", "inplace", 32),
         ("tsm_mobilenetv2", "residual", 64), ("tsm_mobilenetv2", "inplace", 64)]


@pytest.mark.parametrize("name,place,size", CASES)
def test_streaming_equals_offline_unidirectional(name, place, size):
    torch.manual_seed(0)
    model = _randomize(create_model(name, num_classes=5, num_frames=4, shift_mode="unidirectional",
                                    shift_place=place), size)
    x = torch.randn(2, 4, 3, size, size)
    with torch.no_grad():
        offline_frames, offline_clip = model.forward_frames(x), model(x)
    shifts_before = model.temporal_shifts()
    online = OnlineTSM(model)
    streamed = torch.stack([online.step(x[:, t]) for t in range(4)], dim=1)  # (B, T, K)
    torch.testing.assert_close(streamed, offline_frames, atol=1e-5, rtol=0)
    torch.testing.assert_close(streamed.mean(1), offline_clip, atol=1e-5, rtol=0)
    # the shift is really used: TSN with the same weights gives other per-frame logits
    tsn = create_model(name.replace("tsm_", "tsn_"), num_classes=5, num_frames=4).eval()
    tsn.load_state_dict(model.state_dict())
    with torch.no_grad():
        independent = tsn.forward_frames(x)
    assert (independent - streamed).abs().amax(dim=(0, 2)).min() > 1e-2  # every frame differs
    assert (streamed[:, 1:] - streamed[:, :1]).abs().max() > 1e-2  # logits depend on the frame
    # nothing stays attached to the modules after a step: the shift modules are back in place
    assert model.temporal_shifts() == shifts_before and len(shifts_before) > 0


def test_explicit_state_matches_step_and_reset_restarts():
    model = _randomize(create_model("tsm_resnet18", num_classes=3, shift_mode="unidirectional"))
    online = OnlineTSM(model)
    x = torch.randn(1, 3, 3, 32, 32)
    state = online.initial_state(1, 32, 32)
    assert len(state) == online.num_states == 8
    assert all(s.abs().sum() == 0 for s in state)
    explicit = []
    with torch.no_grad():
        for t in range(3):
            logits, state = online.step_with_state(x[:, t], state)
            explicit.append(logits)
    stepped = [online.step(x[:, t]) for t in range(3)]
    torch.testing.assert_close(torch.stack(explicit), torch.stack(stepped))
    online.reset()
    torch.testing.assert_close(online.step(x[:, 0]), stepped[0])
    # forward(frame, *state) is the same step as a module call (export form)
    out = online(x[:, 0], *online.initial_state(1, 32, 32))
    assert len(out) == 1 + online.num_states
    torch.testing.assert_close(out[0], stepped[0])


def test_state_shapes_match_the_authors_online_demo():
    """The TSM authors' MobileNetV2 demo initialises these 10 buffers for 224x224 frames."""
    model = create_model("tsm_mobilenetv2", num_classes=27, shift_mode="unidirectional").train()
    online = OnlineTSM(model)
    bn = model.backbone.features[0][1]
    before = bn.running_mean.clone()
    shapes = [tuple(s.shape) for s in online.initial_state(1, 224, 224)]
    assert shapes == [(1, 3, 56, 56), (1, 4, 28, 28), (1, 4, 28, 28), (1, 8, 14, 14),
                      (1, 8, 14, 14), (1, 8, 14, 14), (1, 12, 14, 14), (1, 12, 14, 14),
                      (1, 20, 7, 7), (1, 20, 7, 7)]
    assert model.training  # the shape probe left the mode and BN statistics alone
    torch.testing.assert_close(bn.running_mean, before, rtol=0, atol=0)


def test_online_step_caches_first_fold_channels():
    shift = TemporalShift(16, 8, "unidirectional")
    cache = torch.randn(2, 2, 3, 3)
    frame = torch.randn(2, 16, 3, 3)
    shifted, new_cache = online_shift_step(frame, cache, shift.fold)
    torch.testing.assert_close(shifted[:, :2], cache)
    torch.testing.assert_close(shifted[:, 2:], frame[:, 2:])
    torch.testing.assert_close(new_cache, frame[:, :2])


def test_rejects_models_that_cannot_stream():
    with pytest.raises(ValueError, match="shift_mode='unidirectional'"):
        OnlineTSM(create_model("tsm_resnet18", num_classes=2))
    with pytest.raises(ValueError, match="TSN has no temporal shift"):
        OnlineTSM(create_model("tsn_resnet18", num_classes=2))
    with pytest.raises(ValueError, match="temporal_pool"):
        OnlineTSM(create_model("tsm_resnet18", num_classes=2, shift_mode="unidirectional",
                               temporal_pool=True))
    with pytest.raises(ValueError, match="needs a TSM model"):
        OnlineTSM(torch.nn.Linear(2, 2))


def test_bad_frames_are_clear_errors():
    online = OnlineTSM(create_model("tsm_resnet18", num_classes=2, shift_mode="unidirectional").eval())
    with pytest.raises(ValueError, match=r"\(B, 3, H, W\)"):
        online.step(torch.randn(1, 2, 3, 32, 32))
    online.step(torch.randn(1, 3, 32, 32))
    with pytest.raises(ValueError, match="reset"):
        online.step(torch.randn(1, 3, 64, 64))
    with pytest.raises(ValueError, match="state has 2 tensors"):
        online.step_with_state(torch.randn(1, 3, 32, 32), [torch.zeros(1), torch.zeros(1)])


def test_step_with_state_exports_to_onnx(tmp_path):
    """The explicit-state step traces without warnings and streams the same in onnxruntime."""
    ort = pytest.importorskip("onnxruntime")
    model = _randomize(create_model("tsm_mobilenetv2", num_classes=4, shift_mode="unidirectional"))
    online = OnlineTSM(model).eval()
    state = online.initial_state(1, 32, 32)
    names = [f"state{i}" for i in range(len(state))]
    path = tmp_path / "online.onnx"
    with warnings.catch_warnings():
        warnings.simplefilter("error", torch.jit.TracerWarning)
        warnings.simplefilter("ignore", DeprecationWarning)
        torch.onnx.export(online, (torch.randn(1, 3, 32, 32), *state), path, dynamo=False,
                          input_names=["frame", *names],
                          output_names=["logits", *[n + "_out" for n in names]])
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    x = torch.randn(1, 3, 3, 32, 32)
    online.reset()
    want = [online.step(x[:, t]).numpy() for t in range(3)]
    feed = [s.numpy() for s in online.initial_state(1, 32, 32)]
    for t in range(3):
        logits, *feed = session.run(None, {"frame": x[:, t].numpy(), **dict(zip(names, feed))})
        # onnxruntime fuses BN into the convs: float rounding differs at the 1e-5 level
        np.testing.assert_allclose(logits, want[t], atol=1e-4, rtol=1e-4)
