"""ONNX export of offline models and of the online TSM step, and the check that an export
computes its model (see :mod:`vidcls.export` for the graph contracts and metadata)."""
from __future__ import annotations

import json
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from vidcls.engine.checkpoint import read_preprocessing
from vidcls.export.metadata import set_metadata
from vidcls.export.sessions import OnnxClassifier, OnnxStreamSession
from vidcls.export.shift_split import split_shift_channels
from vidcls.models import Preprocessing
from vidcls.models.online_tsm import OnlineTSM

__all__ = ["export_onnx", "verify_onnx", "EXPORTERS"]

EXPORTERS = ("torchscript", "dynamo")


def _model_meta(model: nn.Module, meta: dict, prep: Preprocessing) -> dict[str, str]:
    """What a deployed model needs besides its graph (classes, preprocessing, build)."""
    classes = meta.get("classes") or getattr(model, "classes", None) or [
        str(i) for i in range(getattr(model, "num_classes", 0))]
    build = meta.get("model") or getattr(model, "build_config", {}) or {}
    return {"vidcls.model": json.dumps(build, default=str),
            "vidcls.classes": json.dumps(list(classes)),
            "vidcls.preprocessing": json.dumps(prep.to_dict())}


def _unwrap_online(model: nn.Module) -> OnlineTSM:
    return model if isinstance(model, OnlineTSM) else OnlineTSM(model)


def _run_exporter(module: nn.Module, args: tuple, path: Path, *, input_names: list[str],
                  output_names: list[str], opset: int, exporter: str, varargs: bool) -> None:
    """Export with a dynamic batch axis on every input and output. ``varargs``: ``module``
    takes ``(first, *rest)`` (the online step), which ``torch.export`` describes as a pair."""
    if exporter not in EXPORTERS:
        raise ValueError(f"unknown exporter {exporter!r}; use one of {EXPORTERS}")
    with warnings.catch_warnings():
        # The tracer's own deprecation notices; TracerWarnings (a broken graph) still show.
        warnings.filterwarnings("ignore", category=DeprecationWarning,
                                message=".*(legacy TorchScript-based ONNX|will be removed).*")
        # TimeSformer's input checks and its embedding-resize branch read the clip's frames,
        # height and width. The exported graph is fixed to those (only the batch axis is
        # dynamic), so the tracer's "might not generalize" notes about them are false alarms.
        # Only those two modules are silenced: a TracerWarning from anywhere else (the shift
        # included) still shows.
        warnings.filterwarnings("ignore", category=torch.jit.TracerWarning,
                                module=r"vidcls\.models\.(timesformer|attention)$")
        if exporter == "torchscript":
            torch.onnx.export(module, args, str(path), input_names=input_names,
                              output_names=output_names, opset_version=opset, dynamo=False,
                              dynamic_axes={n: {0: "batch"} for n in input_names + output_names},
                              do_constant_folding=True)
        else:
            batch = torch.export.Dim("batch")
            shapes = (({0: batch}, tuple({0: batch} for _ in args[1:])) if varargs
                      else tuple({0: batch} for _ in args))
            program = torch.onnx.export(module, args, input_names=input_names,
                                        output_names=output_names, opset_version=max(opset, 18),
                                        dynamo=True, dynamic_shapes=shapes, verbose=False)
            program.save(str(path))


def _finish(path: Path, props: dict[str, str], *, online: bool, split_shift: bool) -> None:
    """Rewrite the online step for onnxruntime (:mod:`vidcls.export.shift_split`) and record
    the metadata, in one load and save of the file."""
    import onnx

    proto = onnx.load(str(path))
    if online:
        count = split_shift_channels(proto) if split_shift else 0
        props["vidcls.shift_split"] = json.dumps(count)
    set_metadata(proto, props)
    onnx.save(proto, str(path))


@torch.no_grad()
def export_onnx(model: nn.Module, path: str | Path, online: bool = False,
                input_size: int | None = None, *, num_frames: int | None = None,
                opset: int = 17, meta: dict | None = None,
                exporter: str = "torchscript", split_shift: bool = True) -> Path:
    """Export ``model`` to ONNX at ``path``; returns the path.

    ``input_size``: crop size of the exported graph (default: the crop height of the model
    card, ``meta``'s preprocessing over the model's own); ``num_frames``: frames per clip of an
    offline graph (default: the model's).
    ``online=True`` exports the unidirectional TSM step function (see the module docstring).
    ``meta``: a checkpoint's meta (classes, preprocessing) to record in the ONNX metadata.
    ``split_shift`` (online): keep the residual streams split at the cached channels so
    onnxruntime copies nothing for the shift (:mod:`vidcls.export.shift_split`; the same
    function, recorded as ``vidcls.shift_split``, the number of blocks rewritten).
    The model is put in eval mode on the CPU in float32 (export is for deployment).
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    model = model.eval().float().cpu()
    network = getattr(model, "model", model)  # an OnlineTSM wraps the network
    meta = dict(meta or {})
    prep = read_preprocessing(meta, network)
    size = int(input_size) if input_size is not None else prep.crop_hw[0]
    props = _model_meta(network, meta, prep)
    if online:
        step = _unwrap_online(model).eval()
        state = step.initial_state(1, size, size)
        frame = torch.zeros(1, 3, size, size)
        state_in = [f"state_in_{i}" for i in range(len(state))]
        state_out = [f"state_out_{i}" for i in range(len(state))]
        inputs, outputs = ["frame", *state_in], ["logits", *state_out]
        _run_exporter(step, (frame, *state), path, input_names=inputs, output_names=outputs,
                      opset=opset, exporter=exporter, varargs=True)
        props.update({"vidcls.kind": "online", "vidcls.state_names": json.dumps(state_in),
                      "vidcls.state_shapes": json.dumps([list(s.shape[1:]) for s in state]),
                      "vidcls.frame_shape": json.dumps([3, size, size])})
    else:
        frames = int(num_frames or getattr(model, "num_frames", 8))
        clip = torch.zeros(1, frames, 3, size, size)
        inputs, outputs = ["clip"], ["logits"]
        _run_exporter(model, (clip,), path, input_names=inputs, output_names=outputs,
                      opset=opset, exporter=exporter, varargs=False)
        props.update({"vidcls.kind": "offline",
                      "vidcls.clip_shape": json.dumps([frames, 3, size, size])})
    props.update({"vidcls.input_names": json.dumps(inputs),
                  "vidcls.output_names": json.dumps(outputs)})
    _finish(path, props, online=online, split_shift=split_shift)
    return path


@torch.no_grad()
def verify_onnx(model: nn.Module, path: str | Path, *, online: bool = False, seed: int = 0,
                batch: int = 2, num_steps: int = 4, atol: float = 1e-3) -> dict[str, Any]:
    """Compare the export at ``path`` in onnxruntime with ``model`` in PyTorch.

    A graph that traced a shape as a constant or mis-exported the shift still loads and runs,
    so the only proof an export is right is that it computes the model's logits. Both run on
    the same random input from a generator seeded with ``seed`` (the global RNG is untouched):
    an offline export on ``batch`` clips of its recorded clip shape; an online export
    (``online=True``) on ``num_steps`` frames per stream, step by step against
    :class:`~vidcls.models.online_tsm.OnlineTSM`. ``batch`` defaults to 2 so a batch axis
    fixed at the traced 1 shows up as an error.

    Returns ``{"max_abs_diff": float, "atol": atol, "ok": max_abs_diff < atol}``. An export of
    the other kind (``online`` wrong) raises ``ValueError``.
    """
    model = model.eval().float().cpu()
    generator = torch.Generator().manual_seed(seed)
    if online:
        session = OnnxStreamSession(path)
        size = session.meta["frame_shape"][-1]
        # (B, T, 3, S, S): T frames per stream, fed one step at a time
        frames = torch.randn(batch, num_steps, 3, size, size, generator=generator)
        stream = _unwrap_online(model).eval()
        stream.reset()
        diff = max(float(np.abs(session.step(frames[:, t]) - stream.step(frames[:, t]).numpy())
                         .max()) for t in range(num_steps))
    else:
        classifier = OnnxClassifier(path)
        clip = torch.randn(batch, *classifier.meta["clip_shape"], generator=generator)
        diff = float(np.abs(classifier(clip) - model(clip).numpy()).max())
    return {"max_abs_diff": diff, "atol": atol, "ok": diff < atol}
