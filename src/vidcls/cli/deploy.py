"""``vidcls convert | export | stream``: argument parsing only; the work is in
:mod:`vidcls.convert`, :mod:`vidcls.export` and :mod:`vidcls.inference.stream`."""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from vidcls.cli._common import add_model_source, add_precision, fail, model_source


# ------------------------------------------------------------------------------ convert
_CONVERT_OPTIONS = ("num_frames", "shift_div", "shift_place", "shift_mode", "classes",
                    "num_classes", "num_heads", "img_size", "frame_interval", "attention",
                    "model", "config")


def cmd_convert(args: argparse.Namespace) -> int:
    import warnings

    from vidcls.convert import ConversionWarning, convert_checkpoint

    options = {k: getattr(args, k) for k in _CONVERT_OPTIONS if getattr(args, k) is not None}
    error = None
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", ConversionWarning)
        try:
            out = convert_checkpoint(args.src, args.dst, args.fmt, **options)
        except (ValueError, FileNotFoundError, KeyError) as err:
            error = err
    for w in caught:  # the defaults the conversion used, one line each
        if issubclass(w.category, ConversionWarning):
            print(f"vidcls convert: warning: {w.message}", file=sys.stderr)
        else:
            warnings.showwarning(w.message, w.category, w.filename, w.lineno)
    if error is not None:
        return fail("convert", error)
    from vidcls.engine.checkpoint import read_meta, read_preprocessing

    meta = read_meta(out)
    model = meta["model"]
    settings = ", ".join(f"{k}={v}" for k, v in model.items() if k not in ("name",))
    print(f"wrote {out}: {model['name']} ({settings}) from {meta['source']['format']}")
    prep = read_preprocessing(meta)
    crop = prep.input_size if isinstance(prep.input_size, int) else list(prep.input_size)
    print(f"  preprocessing: mean={list(prep.mean)} std={list(prep.std)} "
          f"resize={prep.resize} crop={crop}")
    print(f"  classes: {len(meta['classes'])} ({', '.join(meta['classes'][:3])}, ...)")
    return 0


def _add_convert_parser(subparsers) -> None:
    from vidcls.convert.formats import AUTO, FORMAT_NAMES  # the --from choices, without torch

    p = subparsers.add_parser(
        "convert",
        description="Convert a checkpoint of the reference implementations into a vidcls "
                    "checkpoint (model.safetensors + meta.json) for predict, eval, stream and "
                    "train --init. The format is read from the file and its keys (--from "
                    "auto); image weights (torchvision-resnet, timm-vit) need --from. Settings "
                    "the weights do not show are read from the file or folder name (TSM) or "
                    "the config the checkpoint stores (TimeSformer, mmaction2); explicit "
                    "options win, and a default used instead is printed as a warning. "
                    "tsm-paddle needs --num-frames or --config: a .pdparams stores no segment "
                    "count, and Paddle's shift width depends on it.")
    p.add_argument("src", help="checkpoint file (or a save_pretrained directory for "
                               "timesformer-hf)")
    p.add_argument("dst", help="output checkpoint directory")
    p.add_argument("--from", dest="fmt", default=AUTO, choices=[AUTO, *sorted(FORMAT_NAMES)],
                   help="source format (default: auto, read from the file)")
    p.add_argument("--num-frames", type=int, help="frames per clip (TSM segments: required for "
                                                  "tsm-paddle unless --config gives them; "
                                                  "TimeSformer: the time embedding is "
                                                  "interpolated)")
    p.add_argument("--shift-div", type=int, help="TSM: 1/shift_div of the channels move each "
                                                 "way (default: from the file, else 8)")
    p.add_argument("--shift-place", choices=("residual", "inplace"),
                   help="TSM: where the shift goes (torchvision-resnet init; tsm-official: "
                        "must match the file)")
    p.add_argument("--shift-mode", choices=("bidirectional", "unidirectional"),
                   help="TSM init from torchvision weights: offline or online shift")
    p.add_argument("--classes", help="class names: a text file (one per line, in label order) "
                                     "or kinetics400 / jester")
    p.add_argument("--num-classes", type=int, help="classes of a model initialised from image "
                                                   "weights (torchvision-resnet, timm-vit)")
    p.add_argument("--num-heads", type=int, help="TimeSformer attention heads (not stored in "
                                                 "checkpoints; default embed_dim / 64)")
    p.add_argument("--img-size", type=int, help="TimeSformer crop size (position embedding is "
                                                "interpolated)")
    p.add_argument("--frame-interval", type=int, help="TimeSformer: frames between sampled "
                                                      "frames (default: the stored config's)")
    p.add_argument("--attention", help="timm-vit: TimeSformer attention scheme (divided, joint, "
                                       "space, local_global, axial)")
    p.add_argument("--model", help="torchvision-resnet: target model, e.g. tsm_resnet50 or "
                                   "tsn_resnet50")
    p.add_argument("--config", help="timesformer-hf: config.json for a bare weight file; "
                                    "tsm-paddle: the PaddleVideo training YAML (its "
                                    "MODEL.backbone.num_seg)")
    p.set_defaults(func=cmd_convert)


# ------------------------------------------------------------------------------ export
def _export_paths(args: argparse.Namespace) -> Path:
    """The output file: ``-o``, else ``CKPT/model[_online][_int8].onnx`` (``NAME...`` for
    ``--model``)."""
    if args.output:
        return Path(args.output)
    stem = "model" if args.checkpoint else args.model
    stem += ("_online" if args.online else "") + ("_int8" if args.int8 else "")
    return Path(args.checkpoint) / f"{stem}.onnx" if args.checkpoint else Path(f"{stem}.onnx")


def _check_int8_options(args: argparse.Namespace) -> list:
    """The calibration sources of ``--int8`` (checked before anything is exported)."""
    from vidcls.export.quantize import calibration_sources

    if args.calibrate and not args.int8:
        raise ValueError("--calibrate is for --int8 (the clips int8 ranges are measured on)")
    if not args.int8:
        return []
    if not args.online:
        raise ValueError("--int8 quantizes the online step: add --online")
    if not args.calibrate:
        raise ValueError("--int8 needs --calibrate VIDEO [VIDEO ...] (or a text list of "
                         "videos): a few clips like the ones the model will see")
    if args.calibrate_frames < 1:
        raise ValueError(f"--calibrate-frames must be >= 1, got {args.calibrate_frames}")
    return calibration_sources(args.calibrate)


def _quantize(args, model, meta, fp32: Path, out: Path, sources: list) -> None:
    from vidcls.engine.checkpoint import read_preprocessing
    from vidcls.export.quantize import calibration_clips, int8_agreement, quantize_online

    prep = read_preprocessing(meta, model)
    if args.input_size:
        prep = prep.replace(input_size=args.input_size)
    clips = calibration_clips(sources, prep, frames=args.calibrate_frames)
    quantize_online(fp32, out, clips)
    check = int8_agreement(fp32, out, clips)
    print(f"wrote {out} (int8, calibrated on {check['frames']} frames of {len(clips)} clips)")
    print(f"int8 vs fp32 on the calibration frames: same top-1 on "
          f"{100 * check['top1_agreement']:.1f}%, max |probability difference| = "
          f"{check['max_prob_diff']:.3f}")


def cmd_export(args: argparse.Namespace) -> int:
    import tempfile

    from vidcls.engine.checkpoint import load_model
    from vidcls.export import export_onnx, verify_onnx

    with tempfile.TemporaryDirectory(prefix="vidcls-export-") as tmp:
        try:
            if (args.checkpoint is None) == (args.model is None):
                raise ValueError("give a checkpoint directory or --model NAME (not both)")
            sources = _check_int8_options(args)
            model, meta = load_model(model_source(args))
            out = _export_paths(args)
            fp32 = Path(tmp) / "fp32.onnx" if args.int8 else out
            export_onnx(model, fp32, online=args.online, input_size=args.input_size,
                        num_frames=args.num_frames, opset=args.opset, meta=meta,
                        exporter=args.exporter)
        except (ValueError, OSError) as err:  # OSError: also a failed download (--model)
            return fail("export", err)
        if not args.int8:
            print(f"wrote {out}")
        if not args.no_verify:
            check = verify_onnx(model, fp32, online=args.online)
            print(f"onnxruntime vs PyTorch: max |logit difference| = {check['max_abs_diff']:.2e}")
            if not check["ok"]:
                return 1
        if args.int8:
            try:
                _quantize(args, model, meta, fp32, out, sources)
            except (ValueError, OSError) as err:
                return fail("export", err)
    return 0


def _add_export_parser(subparsers) -> None:
    p = subparsers.add_parser("export", description="Export a vidcls checkpoint to ONNX with a "
                                                    "dynamic batch axis. --online exports a "
                                                    "unidirectional TSM as a step function "
                                                    "whose shift caches are explicit "
                                                    "inputs/outputs; --int8 then quantizes it, "
                                                    "calibrated on a few clips.")
    p.add_argument("checkpoint", nargs="?", help="vidcls checkpoint directory")
    p.add_argument("--model", metavar="NAME", help="or a published model by name (vidcls "
                   "models; default output NAME[_online][_int8].onnx)")
    p.add_argument("--offline", action="store_true", default=None,
                   help="with --model: use the cache only (also VIDCLS_OFFLINE=1)")
    p.add_argument("--format", default="onnx", choices=("onnx",), help="export format")
    p.add_argument("--online", action="store_true", help="export the streaming step function")
    p.add_argument("-o", "--output", help="output file (default: "
                                          "CKPT/model[_online][_int8].onnx)")
    p.add_argument("--input-size", type=int, help="crop size (default: the checkpoint's)")
    p.add_argument("--num-frames", type=int, help="frames per clip of an offline graph")
    p.add_argument("--opset", type=int, default=17)
    p.add_argument("--exporter", default="torchscript", choices=("torchscript", "dynamo"))
    p.add_argument("--no-verify", action="store_true",
                   help="skip the onnxruntime vs PyTorch check")
    p.add_argument("--int8", action="store_true",
                   help="with --online: write the int8 (static post-training quantized) step")
    p.add_argument("--calibrate", nargs="+", metavar="VIDEO",
                   help="--int8 calibration clips: video files, frame folders, folders of "
                        "videos or text lists of them (one per line)")
    p.add_argument("--calibrate-frames", type=int, default=16,
                   help="frames read from the start of each calibration clip (default 16)")
    p.set_defaults(func=cmd_export)


# ------------------------------------------------------------------------------ stream
def cmd_stream(args: argparse.Namespace) -> int:
    from vidcls.inference.stream import StreamPredictor, StreamStats, stream_predictions

    if args.threads:
        import torch

        torch.set_num_threads(args.threads)
    try:
        predictor = StreamPredictor(model_source(args), backend=args.backend, smooth=args.smooth,
                                    top_k=args.top_k, onnx_path=args.onnx,
                                    threads=args.threads, precision=args.precision)
    except (ValueError, OSError) as err:  # OSError: also a failed download (--model)
        return fail("stream", err)
    stats = StreamStats()
    records = stream_predictions(args.source, predictor=predictor, stats=stats,
                                 max_frames=args.max_frames, input_format=args.input_format,
                                 output=args.output or None)
    interrupted = False
    try:
        for rec in records:  # the source opens (and may fail) on the first frame
            if args.json:
                rec = {k: v for k, v in rec.items() if k != "logits"}
                print(json.dumps(rec), flush=True)
            else:
                print(f"frame {rec['frame']:6d}  {rec['label']:<30.30s} {100 * rec['score']:5.1f}%"
                      f"  {rec['latency_ms']:7.1f} ms  {rec['fps']:6.1f} fps", flush=True)
    except KeyboardInterrupt:
        interrupted = True
    except (ValueError, FileNotFoundError) as err:
        return fail("stream", err)
    finally:
        records.close()  # finishes the annotated video too
    summary = {**stats.summary(), "interrupted": interrupted, "backend": args.backend}
    if args.json:
        print(json.dumps({"summary": summary}), flush=True)
    else:
        mean, p95 = summary["mean_latency_ms"], summary["p95_latency_ms"]
        print(f"{summary['frames']} frames"
              + (f", latency mean {mean:.1f} ms / p95 {p95:.1f} ms, {summary['fps']:.1f} fps"
                 if summary["frames"] else "")
              + (" (interrupted)" if interrupted else ""), file=sys.stderr)
    if args.output:
        print(f"wrote {args.output}", file=sys.stderr)
    return 0


def _add_stream_parser(subparsers) -> None:
    p = subparsers.add_parser("stream", description="Classify a video file, frame folder, "
                                                    "camera (0, /dev/video0) or URL frame by "
                                                    "frame with an online (unidirectional) "
                                                    "TSM; prints the prediction averaged over "
                                                    "the last frames with per-frame latency "
                                                    "and fps. Ctrl-C stops with a summary.")
    p.add_argument("source", help="video file, frame folder, camera index/device or URL")
    add_model_source(p, what="vidcls checkpoint directory of an online (unidirectional) TSM")
    p.add_argument("--backend", default="torch", choices=("torch", "onnx", "openvino"),
                   help="torch; onnx (onnxruntime, fp32 or an int8 export); openvino (pip "
                        "install 'vidcls[openvino]'; bf16 where the CPU computes it natively)")
    p.add_argument("--onnx", help="onnx / openvino backend: an existing online export to use "
                                  "(e.g. model_online_int8.onnx from export --int8)")
    p.add_argument("--smooth", type=int, default=12,
                   help="average the logits over the last N frames (default 12, as the TSM demo)")
    p.add_argument("--top-k", type=int, default=1)
    p.add_argument("--output", help="write the video with the label drawn on it (e.g. out.mp4)")
    p.add_argument("--json", action="store_true", help="one JSON record per frame")
    p.add_argument("--max-frames", type=int, help="stop after N frames")
    p.add_argument("--input-format", help="FFmpeg input format (e.g. v4l2, avfoundation)")
    add_precision(p)
    p.add_argument("--threads", type=int, help="CPU threads for the model (torch and "
                                               "onnxruntime; 1 is best on a busy machine)")
    p.set_defaults(func=cmd_stream)


def register(subparsers) -> None:
    """Add ``convert``, ``export`` and ``stream``."""
    _add_convert_parser(subparsers)
    _add_export_parser(subparsers)
    _add_stream_parser(subparsers)
