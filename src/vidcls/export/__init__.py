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
  The traced step is then rewritten so onnxruntime copies nothing for the shift where the
  cached channels fill whole layout blocks (:mod:`vidcls.export.shift_split`).
* int8 (``quantize_online``): the online export with static post-training quantization,
  calibrated on the frames of a few clips (:mod:`vidcls.export.quantize`).

Metadata (``metadata_props`` of the ONNX model, JSON strings): ``vidcls.kind`` (``offline`` /
``online``), ``vidcls.model`` (build config), ``vidcls.classes``, ``vidcls.preprocessing`` (the
model card as :meth:`vidcls.models.Preprocessing.to_dict` writes it: the checkpoint meta's
record, fields it lacks from the model's own), ``vidcls.input_names`` /
``vidcls.output_names``, and for online models ``vidcls.state_names`` /
``vidcls.state_shapes`` (per-stream shapes ``(fold, h, w)``), ``vidcls.shift_split`` (blocks
rewritten) and, for an int8 model, ``vidcls.quantization``.

Checking an export: :func:`verify_onnx` runs the file in onnxruntime and the model in PyTorch
on the same random input and reports the largest logit difference (``vidcls export`` does this
after every export unless ``--no-verify``).

Exporter: torch 2.13 has both the TorchScript tracer (``dynamo=False``, deprecated but
10x faster here: ~5 s for a ResNet-18 TSM) and the ``torch.export`` one (``dynamo=True``,
needs onnxscript). ``exporter="torchscript"`` (default) uses the tracer, ``"dynamo"`` the
other; both give the same graph semantics and are verified by onnxruntime in the tests.

Modules: :mod:`~vidcls.export.onnx_export` (export, verify), :mod:`~vidcls.export.sessions`
(onnxruntime), :mod:`~vidcls.export.shift_split`, :mod:`~vidcls.export.quantize`,
:mod:`~vidcls.export.metadata`.
"""
from vidcls.export.metadata import read_onnx_metadata
from vidcls.export.onnx_export import EXPORTERS, export_onnx, verify_onnx
from vidcls.export.sessions import OnnxClassifier, OnnxStreamSession, onnx_session

__all__ = ["export_onnx", "verify_onnx", "read_onnx_metadata", "OnnxStreamSession",
           "OnnxClassifier", "onnx_session", "EXPORTERS"]
