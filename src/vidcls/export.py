"""ONNX export: offline models with a dynamic batch axis, and online TSM as a step function.

* Offline (TSN / TSM / TimeSformer): ``clip (B, T, 3, S, S) -> logits (B, K)``, ``B`` dynamic.
  The temporal shift has an export path built from slices and ``torch.cat`` with shape
  arithmetic through ``reshape(-1, ...)`` only (:mod:`vidcls.ops.temporal_shift`), so tracing
  emits no ``TracerWarning`` and the batch axis really stays dynamic -- the TSM repo's
  in-place shift could not be exported (its issues #77, #103, #189).
* Online (``online=True``, a unidirectional TSM): the step function of
  :class:`vidcls.models.online_tsm.OnlineTSM` with the shift caches as explicit inputs and
  outputs, ``logits, *state_out = f(frame, *state_in)``, as the TSM authors' online demo
  exports it.
  Inputs ``frame``, ``state_in_0..``; outputs ``logits``, ``state_out_0..``; all with a dynamic
  batch axis. Start a stream with zero states of the shapes recorded in the metadata.

Metadata (``metadata_props`` of the ONNX model, JSON strings): ``vidcls.kind`` (``offline`` /
``online``), ``vidcls.model`` (build config), ``vidcls.classes``, ``vidcls.preprocessing`` (the
model card as :meth:`vidcls.models.Preprocessing.to_dict` writes it: the checkpoint meta's
record, fields it lacks from the model's own), ``vidcls.input_names`` /
``vidcls.output_names``, and for online models ``vidcls.state_names`` /
``vidcls.state_shapes`` (per-stream shapes ``(fold, h, w)``).

Checking an export: :func:`verify_onnx` runs the file in onnxruntime and the model in PyTorch
on the same random input and reports the largest logit difference (``vidcls export`` does this
after every export unless ``--no-verify``).

Exporter: torch 2.13 has both the TorchScript tracer (``dynamo=False``, deprecated but
10x faster here: ~5 s for a ResNet-18 TSM) and the ``torch.export`` one (``dynamo=True``,
needs onnxscript). ``exporter="torchscript"`` (default) uses the tracer, ``"dynamo"`` the
other; both give the same graph semantics and are verified by onnxruntime in the tests.
"""
from __future__ import annotations

import json
import warnings
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import torch
from torch import nn

from vidcls.engine.checkpoint import read_preprocessing
from vidcls.models import Preprocessing
from vidcls.models.online_tsm import OnlineTSM

__all__ = ["export_onnx", "verify_onnx", "read_onnx_metadata", "OnnxStreamSession",
           "OnnxClassifier", "onnx_session"]

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


def _write_metadata(path: Path, props: dict[str, str]) -> None:
    import onnx

    proto = onnx.load(str(path))
    existing = {p.key: p for p in proto.metadata_props}
    for key, value in props.items():
        entry = existing.get(key) or proto.metadata_props.add()
        entry.key, entry.value = key, value
    onnx.save(proto, str(path))


@torch.no_grad()
def export_onnx(model: nn.Module, path: str | Path, online: bool = False,
                input_size: int | None = None, *, num_frames: int | None = None,
                opset: int = 17, meta: dict | None = None,
                exporter: str = "torchscript") -> Path:
    """Export ``model`` to ONNX at ``path``; returns the path.

    ``input_size``: crop size of the exported graph (default: the crop height of the model
    card, ``meta``'s preprocessing over the model's own); ``num_frames``: frames per clip of an
    offline graph (default: the model's).
    ``online=True`` exports the unidirectional TSM step function (see the module docstring).
    ``meta``: a checkpoint's meta (classes, preprocessing) to record in the ONNX metadata.
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
    _write_metadata(path, props)
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


def read_onnx_metadata(path: str | Path) -> dict[str, Any]:
    """The ``vidcls.*`` metadata of an exported model, JSON-decoded, without the prefix."""
    import onnx

    proto = onnx.load(str(path), load_external_data=False)
    out = {}
    for prop in proto.metadata_props:
        if prop.key.startswith("vidcls."):
            try:
                out[prop.key[len("vidcls."):]] = json.loads(prop.value)
            except json.JSONDecodeError:
                out[prop.key[len("vidcls."):]] = prop.value
    return out


def onnx_session(path: str | Path, *, threads: int | None = None):
    """An onnxruntime CPU session (``threads``: intra-op threads, default onnxruntime's)."""
    import onnxruntime as ort

    options = ort.SessionOptions()
    if threads:
        options.intra_op_num_threads = int(threads)
    return ort.InferenceSession(str(path), sess_options=options,
                                providers=["CPUExecutionProvider"])


class OnnxClassifier:
    """An exported offline model: ``__call__(clip (B, T, 3, S, S) float) -> logits (B, K)``."""

    def __init__(self, path: str | Path, *, threads: int | None = None):
        self.session = onnx_session(path, threads=threads)
        self.meta = read_onnx_metadata(path)
        if self.meta.get("kind") != "offline":
            raise ValueError(f"{path} is an {self.meta.get('kind')!r} export; OnnxClassifier "
                             "runs offline ones (use OnnxStreamSession)")

    def __call__(self, clip) -> np.ndarray:
        clip = clip.numpy() if isinstance(clip, torch.Tensor) else np.asarray(clip)
        return self.session.run(["logits"], {"clip": clip.astype(np.float32)})[0]


class OnnxStreamSession:
    """Runs an online export frame by frame, keeping the shift caches between calls.

    ``step(frame (B, 3, S, S)) -> logits (B, K)`` (numpy); ``reset()`` starts a new stream
    (zero caches, the offline shift's zero padding before frame 0).
    """

    def __init__(self, path: str | Path, *, threads: int | None = None):
        self.session = onnx_session(path, threads=threads)
        self.meta = read_onnx_metadata(path)
        if self.meta.get("kind") != "online":
            raise ValueError(f"{path} is not an online export (export it with online=True / "
                             "vidcls export --online)")
        self.state_names: list[str] = list(self.meta["state_names"])
        self.state_shapes: list[Sequence[int]] = [tuple(s) for s in self.meta["state_shapes"]]
        self.output_names = ["logits"] + [n.replace("_in_", "_out_") for n in self.state_names]
        self._state: list[np.ndarray] | None = None

    def reset(self) -> None:
        self._state = None

    def initial_state(self, batch: int = 1) -> list[np.ndarray]:
        return [np.zeros((batch, *shape), np.float32) for shape in self.state_shapes]

    def step_with_state(self, frame: np.ndarray, state: list[np.ndarray]
                        ) -> tuple[np.ndarray, list[np.ndarray]]:
        feed = {"frame": np.ascontiguousarray(frame, dtype=np.float32)}
        feed.update(zip(self.state_names, state))
        logits, *new_state = self.session.run(self.output_names, feed)
        return logits, new_state

    def step(self, frame) -> np.ndarray:
        frame = frame.numpy() if isinstance(frame, torch.Tensor) else np.asarray(frame)
        if frame.ndim != 4:
            raise ValueError(f"step expects one frame per stream, (B, 3, H, W); got shape "
                             f"{frame.shape}")
        if self._state is None or self._state[0].shape[0] != frame.shape[0]:
            self._state = self.initial_state(frame.shape[0])
        logits, self._state = self.step_with_state(frame, self._state)
        return logits
