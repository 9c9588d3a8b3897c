"""ONNX export checked with onnxruntime: offline logits equal PyTorch for several batch sizes
(dynamic batch axis), the TSM shift traces without TracerWarning, streaming a clip through
the exported online step function equals PyTorch's OnlineTSM (and the offline model), and
verify_onnx tells a right export from a wrong one."""
from __future__ import annotations

import warnings

import numpy as np
import pytest
import torch

from vidcls.engine.checkpoint import save_model_checkpoint
from vidcls.export import (OnnxClassifier, OnnxStreamSession, export_onnx, read_onnx_metadata,
                           verify_onnx)
from helpers.models import calibrated_model
from vidcls.models import create_model
from vidcls.models.online_tsm import OnlineTSM


def _calibrated(name: str, size: int = 32, **options) -> torch.nn.Module:
    return calibrated_model(name, num_classes=5, size=size, **options)


def _export_without_tracer_warnings(*args, **kwargs):
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        path = export_onnx(*args, **kwargs)
    tracer = [w for w in caught if issubclass(w.category, torch.jit.TracerWarning)]
    assert not tracer, [str(w.message)[:120] for w in tracer]
    return path


@pytest.mark.parametrize("place", ["residual", "inplace"])
def test_offline_tsm_export_matches_pytorch_for_any_batch(tmp_path, place):
    model = _calibrated("tsm_resnet18", shift_place=place, shift_div=4)
    model.classes = ["a", "b", "c", "d", "e"]
    path = _export_without_tracer_warnings(model, tmp_path / "tsm.onnx", input_size=32)
    clf = OnnxClassifier(path, threads=1)
    assert isinstance(clf.session.get_inputs()[0].shape[0], str)  # symbolic batch axis
    for batch in (1, 3):
        x = torch.randn(batch, 4, 3, 32, 32)
        with torch.no_grad():
            expected = model(x).numpy()
        np.testing.assert_allclose(clf(x), expected, atol=1e-4, rtol=0)
    meta = read_onnx_metadata(path)
    assert meta["kind"] == "offline" and meta["clip_shape"] == [4, 3, 32, 32]
    assert meta["classes"] == ["a", "b", "c", "d", "e"]
    assert meta["model"]["shift_place"] == place
    assert meta["preprocessing"]["mean"] == [0.485, 0.456, 0.406]


def test_timesformer_export_matches_pytorch(tmp_path):
    torch.manual_seed(0)
    model = create_model("timesformer_base", num_classes=4, num_frames=4, img_size=32,
                         patch_size=16, embed_dim=32, depth=2, num_heads=2).eval()
    with torch.no_grad():
        for name, p in model.named_parameters():
            if "temporal_fc" in name or name == "time_embed":
                p.normal_(0, 0.2)
    with warnings.catch_warnings(record=True) as caught:
        # the clip-size checks' tracer notes are silenced inside export_onnx (sizes are fixed
        # in the graph; the batch axis stays dynamic): a user sees no warning
        warnings.simplefilter("always")
        path = export_onnx(model, tmp_path / "ts.onnx")
    assert not [w for w in caught if issubclass(w.category, torch.jit.TracerWarning)]
    clf = OnnxClassifier(path, threads=1)
    x = torch.randn(3, 4, 3, 32, 32)
    with torch.no_grad():
        np.testing.assert_allclose(clf(x), model(x).numpy(), atol=1e-4, rtol=0)


def test_online_export_streams_like_pytorch(tmp_path):
    model = _calibrated("tsm_mobilenetv2", shift_mode="unidirectional")
    path = _export_without_tracer_warnings(model, tmp_path / "online.onnx", online=True,
                                           input_size=32)
    session = OnnxStreamSession(path, threads=1)
    online = OnlineTSM(model)
    assert session.state_shapes == [tuple(s) for s in online.state_shapes(32, 32)]
    meta = read_onnx_metadata(path)
    assert meta["kind"] == "online" and len(meta["state_names"]) == online.num_states == 10
    names = [i.name for i in session.session.get_inputs()]
    assert names == ["frame", *meta["state_names"]]
    assert [o.name for o in session.session.get_outputs()][0] == "logits"

    x = torch.randn(2, 5, 3, 32, 32)  # batch 2: the batch axis of frame and caches is dynamic
    streamed = np.stack([session.step(x[:, t]) for t in range(5)], axis=1)  # (B, T, K)
    with torch.no_grad():
        torch_streamed = torch.stack([online.step(x[:, t]) for t in range(5)], 1).numpy()
        offline = model.forward_frames(x).numpy()
    np.testing.assert_allclose(streamed, torch_streamed, atol=1e-4, rtol=0)
    np.testing.assert_allclose(streamed, offline, atol=1e-4, rtol=0)
    # the caches carry information: a fresh stream from frame 2 on gives other logits
    session.reset()
    assert np.abs(session.step(x[:, 2]) - streamed[:, 2]).max() > 1e-3
    assert verify_onnx(model, path, online=True)["ok"]  # what `vidcls export` checks


def test_cli_export_and_errors(tmp_path, capsys):
    from vidcls.cli import main

    model = _calibrated("tsm_resnet18", shift_mode="unidirectional")
    ckpt = save_model_checkpoint(tmp_path / "ckpt", model,
                                 preprocessing={"input_size": 32, "resize": 36})
    assert main(["export", str(ckpt), "--format", "onnx", "--online"]) == 0
    out = capsys.readouterr().out
    assert "max |logit difference|" in out and (ckpt / "model_online.onnx").is_file()
    assert read_onnx_metadata(ckpt / "model_online.onnx")["frame_shape"] == [3, 32, 32]

    offline = save_model_checkpoint(tmp_path / "bi", _calibrated("tsm_resnet18"),
                                    preprocessing={"input_size": 32, "resize": 36})
    assert main(["export", str(offline), "--online", "--no-verify"]) == 2
    assert "unidirectional" in capsys.readouterr().err


def test_verify_onnx_compares_an_export_with_its_model(tmp_path):
    model = _calibrated("tsm_resnet18")
    path = export_onnx(model, tmp_path / "tsm.onnx", input_size=32)
    check = verify_onnx(model, path)
    assert check["ok"] and check["max_abs_diff"] < 1e-4 and check["atol"] == 1e-3
    assert verify_onnx(model, path, seed=1)["max_abs_diff"] != check["max_abs_diff"]
    state = torch.get_rng_state()
    verify_onnx(model, path)
    assert torch.equal(torch.get_rng_state(), state)  # its own generator, not the global one
    # another model's logits are far from the export's: the check fails
    other = _calibrated("tsm_resnet18")
    with torch.no_grad():
        other.head.weight.mul_(-1)
    assert not verify_onnx(other, path)["ok"]


def test_verify_onnx_refuses_an_export_of_the_other_kind(tmp_path):
    model = _calibrated("tsm_resnet18")
    path = export_onnx(model, tmp_path / "tsm.onnx", input_size=32)
    with pytest.raises(ValueError, match="not an online export"):
        verify_onnx(model, path, online=True)


@pytest.mark.parametrize("place", ["residual", "inplace"])
def test_split_online_graph_streams_exactly_and_copies_less(tmp_path, place):
    """The shift-split rewrite (vidcls.export.shift_split) changes the graph, not the function:
    the split and the traced graph stream the same logits as OnlineTSM and the offline model,
    and the rewritten blocks read no Slice / Concat of their input any more."""
    import onnx

    model = _calibrated("tsm_resnet18", shift_mode="unidirectional", shift_place=place)
    split = export_onnx(model, tmp_path / "split.onnx", online=True, input_size=32)
    traced = export_onnx(model, tmp_path / "traced.onnx", online=True, input_size=32,
                         split_shift=False)
    # ResNet-18: 8 shifted blocks; the 3 with 64 input channels (fold 8) stay as traced
    assert read_onnx_metadata(split)["shift_split"] == 5
    assert read_onnx_metadata(traced)["shift_split"] == 0
    graphs = {p: onnx.load(str(p)).graph for p in (split, traced)}
    made_by = {p: {o: n.op_type for n in g.node for o in n.output} for p, g in graphs.items()}
    sliced = {p: [k for k in range(8) if made_by[p][f"state_out_{k}"] == "Slice"]
              for p in graphs}
    assert sliced[traced] == list(range(8)) and len(sliced[split]) == 3
    concats = {p: sum(n.op_type == "Concat" for n in g.node) for p, g in graphs.items()}
    assert concats[split] < concats[traced]

    x = torch.randn(2, 5, 3, 32, 32)
    online = OnlineTSM(model)
    with torch.no_grad():
        torch_streamed = torch.stack([online.step(x[:, t]) for t in range(5)], 1).numpy()
        offline = model.forward_frames(x).numpy()
    for path in (split, traced):
        session = OnnxStreamSession(path, threads=1)
        streamed = np.stack([session.step(x[:, t]) for t in range(5)], axis=1)  # (B, T, K)
        np.testing.assert_allclose(streamed, torch_streamed, atol=1e-4, rtol=0)
        np.testing.assert_allclose(streamed, offline, atol=1e-4, rtol=0)


def test_stream_session_bound_caches_equal_explicit_state(tmp_path):
    """OnnxStreamSession.step (caches bound in onnxruntime, swapped each frame) gives what
    step_with_state gives with the caches passed by hand, and a new batch size restarts."""
    model = _calibrated("tsm_resnet18", shift_mode="unidirectional")
    session = OnnxStreamSession(export_onnx(model, tmp_path / "o.onnx", online=True,
                                            input_size=32), threads=1)
    x = np.random.default_rng(0).standard_normal((1, 4, 3, 32, 32)).astype(np.float32)
    state, by_hand = session.initial_state(1), []
    for t in range(4):
        logits, state = session.step_with_state(x[:, t], state)
        by_hand.append(logits)
    bound = [session.step(x[:, t]) for t in range(4)]
    bound[0][:] = 0  # a returned array is the caller's: it must not alias the next frame's
    np.testing.assert_allclose(np.stack(bound[1:]), np.stack(by_hand[1:]), atol=1e-6, rtol=0)
    assert session.step(np.repeat(x[:, 0], 3, axis=0)).shape[0] == 3
