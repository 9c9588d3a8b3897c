"""``vidcls train | eval``: argument parsing only; the work is in
:func:`vidcls.engine.trainer.fit` and :func:`vidcls.engine.evaluate.evaluate`."""
from __future__ import annotations

import argparse
import json
import signal
import sys

from vidcls.cli._common import add_overrides, fail


def cmd_train(args: argparse.Namespace) -> int:
    from vidcls.engine.config import ConfigError, load_config
    from vidcls.engine.trainer import TrainingDiverged, fit

    try:
        overrides = list(args.overrides)
        if args.init:
            overrides.append(f"model.init={args.init}")
        cfg = load_config(args.config, overrides)
        result = fit(cfg, resume=args.resume_from or args.resume,
                     progress=not args.no_progress)
    except (ConfigError, FileNotFoundError) as err:
        return fail("train", err)
    except TrainingDiverged as err:
        print(f"vidcls train: {err}", file=sys.stderr)
        return 1
    if result.stopped_by:  # SIGTERM/SIGINT: the shell's 128 + signal number
        return 128 + int(getattr(signal, result.stopped_by))
    if result.best_metric is not None:
        print(f"vidcls train: done, best {cfg.eval.best_metric} {result.best_metric:.2f}; "
              f"checkpoints in {result.output_dir / 'checkpoints'}", file=sys.stderr)
    return 0


def cmd_eval(args: argparse.Namespace) -> int:
    from vidcls.engine.config import ConfigError, load_config
    from vidcls.engine.evaluate import evaluate, format_metrics

    try:
        cfg = load_config(args.config, args.overrides)
        metrics = evaluate(cfg, args.checkpoint, split=args.split, out_dir=args.out,
                           num_clips=args.clips, num_crops=args.crops,
                           twice=True if args.twice else None, progress=not args.no_progress)
    except (ConfigError, FileNotFoundError, ValueError) as err:
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
    p.add_argument("--init", default=None, metavar="CKPT",
                   help="start from the weights of a vidcls checkpoint (e.g. made by "
                        "vidcls convert); a head of another class count is re-initialised")
    p.add_argument("--no-progress", action="store_true", help="no progress bars")
    p.set_defaults(func=cmd_train)

    p = subparsers.add_parser("eval", description="Evaluate a checkpoint on the dataset of "
                                                  "CONFIG with multi-view testing "
                                                  "(eval.num_clips x eval.num_crops).")
    p.add_argument("config", help="YAML experiment file (data location, views)")
    add_overrides(p)
    p.add_argument("--checkpoint", required=True,
                   help="checkpoint directory or run directory (uses checkpoints/best)")
    p.add_argument("--split", default="val", choices=["train", "val", "test"])
    p.add_argument("--out", default=None, help="output directory (default OUTPUT_DIR/eval_SPLIT)")
    p.add_argument("--clips", type=int, default=None, help="clips per video (eval.num_clips)")
    p.add_argument("--crops", type=int, default=None, choices=[1, 3, 10],
                   help="crops per clip (eval.num_crops)")
    p.add_argument("--twice", action="store_true", help="TSM twice-sampling (2 clips)")
    p.add_argument("--json", action="store_true", help="print the metrics as JSON")
    p.add_argument("--no-progress", action="store_true")
    p.set_defaults(func=cmd_eval)
