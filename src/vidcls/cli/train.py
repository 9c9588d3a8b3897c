"""``vidcls train | eval``: argument parsing only; the work is in
:func:`vidcls.engine.trainer.fit` and :func:`vidcls.engine.evaluate.evaluate`."""
from __future__ import annotations

import argparse
import json
import signal
import sys

from vidcls.cli._common import (add_model_source, add_overrides, add_precision, fail,
                               model_source)


def cmd_train(args: argparse.Namespace) -> int:
    from vidcls.engine.config import ConfigError, load_config
    from vidcls.engine.trainer import TrainingDiverged, fit

    try:
        overrides = list(args.overrides)
        if args.init:
            overrides.append(f"model.init={init_source(args.init)}")
        cfg = load_config(args.config, overrides)
        result = fit(cfg, resume=args.resume_from or args.resume, overwrite=args.overwrite,
                     progress=not args.no_progress)
    except (ConfigError, OSError, ValueError) as err:  # OSError: also a failed download
        return fail("train", err)
    except TrainingDiverged as err:
        print(f"vidcls train: {err}", file=sys.stderr)
        return 1
    except KeyboardInterrupt as err:  # a second Ctrl-C (TrainingAborted names the checkpoint)
        print(f"vidcls train: {err or 'aborted by Ctrl-C'}", file=sys.stderr)
        return 128 + int(signal.SIGINT)
    if result.stopped_by:  # SIGTERM/SIGINT: the shell's 128 + signal number
        return 128 + int(getattr(signal, result.stopped_by))
    if result.best_metric is not None:
        print(f"vidcls train: done, best {result.best_metric_name} {result.best_metric:.2f}; "
              f"checkpoints in {result.output_dir / 'checkpoints'}", file=sys.stderr)
    return 0


def init_source(init: str) -> str:
    """``--init``: a checkpoint directory, or a published model's name (downloaded and
    converted on first use)."""
    from pathlib import Path

    from vidcls.zoo import checkpoint_dir, is_zoo_name

    if is_zoo_name(init) and not Path(init).exists():
        return str(checkpoint_dir(init))
    return init


def zoo_protocol(name: str) -> tuple[int | None, int | None]:
    """The views (clips, crops) under which the source of published model ``name`` reports its
    accuracy, so that ``vidcls eval --model NAME`` reproduces the reported figure."""
    from vidcls.zoo import get_entry

    protocol = get_entry(name).protocol
    return (protocol.clips, protocol.crops) if protocol else (None, None)


def cmd_eval(args: argparse.Namespace) -> int:
    from vidcls.engine.config import ConfigError, load_config
    from vidcls.engine.evaluate import evaluate, format_metrics

    try:
        cfg = load_config(args.config, args.overrides)
        clips, crops = args.clips, args.crops
        if args.model and clips is None and crops is None:  # the source's reported protocol
            clips, crops = zoo_protocol(args.model)
        metrics = evaluate(cfg, model_source(args), split=args.split, out_dir=args.out,
                           num_clips=clips, num_crops=crops,
                           twice=True if args.twice else None, progress=not args.no_progress,
                           precision=args.precision)
    except (ConfigError, OSError, ValueError) as err:  # OSError: also a failed download
        return fail("eval", err)
    if "output_dir" in metrics:  # rank 0 prints
        print(json.dumps(metrics, indent=2) if args.json else format_metrics(metrics))
    return 0


def register(subparsers) -> None:
    """Add ``train`` and ``eval``."""
    p = subparsers.add_parser("train", description="Train as CONFIG says. Overrides: key=value, "
                                                   "e.g. train.epochs=5 model.shift_div=4. "
                                                   "Multi-process: torchrun --nproc_per_node N "
                                                   "-m vidcls train CONFIG.")
    p.add_argument("config", help="YAML experiment file (see configs/)")
    add_overrides(p)
    p.add_argument("--resume", action="store_true",
                   help="continue OUTPUT_DIR/checkpoints/last; starts fresh when there is "
                        "nothing to resume (safe to use in every (re)submission of a job)")
    p.add_argument("--resume-from", default=None, metavar="CKPT",
                   help="continue from this checkpoint directory (must exist)")
    p.add_argument("--overwrite", action="store_true",
                   help="replace the run OUTPUT_DIR already holds (without --resume or this, "
                        "a directory with checkpoints is an error)")
    p.add_argument("--init", default=None, metavar="CKPT",
                   help="start from the weights of a vidcls checkpoint (e.g. made by "
                        "vidcls convert) or of a published model by name (vidcls models); "
                        "a head of another class count is re-initialised")
    p.add_argument("--no-progress", action="store_true", help="no progress bars")
    p.set_defaults(func=cmd_train)

    p = subparsers.add_parser("eval", description="Evaluate a checkpoint on the dataset of "
                                                  "CONFIG with multi-view testing "
                                                  "(eval.num_clips x eval.num_crops).")
    p.add_argument("config", help="YAML experiment file (data location, views)")
    add_overrides(p)
    add_model_source(p, what="checkpoint directory or run directory (uses checkpoints/best)")
    p.add_argument("--split", default="val", choices=["train", "val", "test"])
    p.add_argument("--out", default=None, help="output directory (default OUTPUT_DIR/eval_SPLIT)")
    p.add_argument("--clips", type=int, default=None, help="clips per video (default "
                   "eval.num_clips; with --model: the views its source reports accuracy with)")
    p.add_argument("--crops", type=int, default=None, choices=[1, 3, 10],
                   help="crops per clip (eval.num_crops)")
    p.add_argument("--twice", action="store_true", help="TSM twice-sampling (2 clips)")
    add_precision(p)
    p.add_argument("--json", action="store_true", help="print the metrics as JSON")
    p.add_argument("--no-progress", action="store_true")
    p.set_defaults(func=cmd_eval)
