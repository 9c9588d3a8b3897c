"""``vidcls train | eval | predict | demo``: argument parsing only; the work is in the library
(``vidcls.engine.trainer.fit``, ``vidcls.engine.evaluate.evaluate``, ``vidcls.predict``,
``vidcls.demo``)."""
from __future__ import annotations

import argparse
import json
import signal
import sys


class _OverridesParser(argparse.ArgumentParser):
    """A subcommand parser whose ``KEY=VALUE`` overrides may come before or after options
    (``vidcls train c.yaml --no-progress train.epochs=5``)."""

    def parse_known_args(self, args=None, namespace=None):
        namespace, extras = super().parse_known_args(args, namespace)
        late = [a for a in extras if "=" in a and not a.startswith("-")]
        namespace.overrides = list(getattr(namespace, "overrides", None) or []) + late
        return namespace, [a for a in extras if a not in late]


def _err(command: str, err: BaseException) -> int:
    print(f"vidcls {command}: error: {err}", file=sys.stderr)
    return 2


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
        return _err("train", err)
    except TrainingDiverged as err:
        print(f"vidcls train: {err}", file=sys.stderr)
        return 1
    if result.stopped_by:
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
        return _err("eval", err)
    if "output_dir" in metrics:  # rank 0 prints
        print(json.dumps(metrics, indent=2) if args.json else format_metrics(metrics))
    return 0


def cmd_predict(args: argparse.Namespace) -> int:
    from vidcls.predict import format_predictions, predict

    try:
        results = predict(args.videos, args.checkpoint, top_k=args.top_k, num_clips=args.clips,
                          num_crops=args.crops, twice=args.twice, device=args.device)
    except (FileNotFoundError, ValueError) as err:
        return _err("predict", err)
    print(json.dumps(results, indent=2) if args.json else format_predictions(results))
    return 1 if any(r.get("error") for r in results) else 0


def cmd_demo(args: argparse.Namespace) -> int:
    from vidcls.demo import run_demo

    try:
        summary = run_demo(out_dir=args.out, quick=args.quick, workers=args.workers,
                           epochs=args.epochs, progress=not args.no_progress)
    except (ValueError, FileNotFoundError) as err:
        return _err("demo", err)
    return 0 if summary.get("ok", True) else 1


def register(sub) -> None:
    """Add ``train``, ``eval``, ``predict`` and ``demo`` to the ``vidcls`` subparsers."""
    p = sub.add_parser("train", help="train a model from a YAML config (works under torchrun)",
                       description="Train as CONFIG says. Overrides: key=value, e.g. "
                                   "train.epochs=5 model.shift_div=4. Multi-process: torchrun "
                                   "--nproc_per_node N -m vidcls train CONFIG.")
    p.add_argument("config", help="YAML experiment file (see configs/)")
    p.add_argument("overrides", nargs="*", metavar="KEY=VALUE", help="config overrides")
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
    p.__class__ = _OverridesParser

    p = sub.add_parser("eval", help="top-1/top-5/mean class accuracy, confusion matrix, "
                                    "per-video predictions",
                       description="Evaluate a checkpoint on the dataset of CONFIG with "
                                   "multi-view testing (eval.num_clips x eval.num_crops).")
    p.add_argument("config", help="YAML experiment file (data location, views)")
    p.add_argument("overrides", nargs="*", metavar="KEY=VALUE", help="config overrides")
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
    p.__class__ = _OverridesParser

    p = sub.add_parser("predict", help="class names and probabilities for video files",
                       description="Predict video files with a checkpoint (its stored "
                                   "preprocessing is used).")
    p.add_argument("videos", nargs="+", metavar="VIDEO")
    p.add_argument("--checkpoint", required=True)
    p.add_argument("--top-k", type=int, default=5)
    p.add_argument("--clips", type=int, default=1)
    p.add_argument("--crops", type=int, default=1, choices=[1, 3, 10])
    p.add_argument("--twice", action="store_true")
    p.add_argument("--device", default="cpu")
    p.add_argument("--json", action="store_true", help="print JSON")
    p.set_defaults(func=cmd_predict)

    p = sub.add_parser("demo", help="synthetic data -> TSN vs TSM -> eval -> predict -> stream",
                       description="Generate the synthetic temporal dataset, train a small TSN "
                                   "and a small TSM with the same budget, evaluate both, predict "
                                   "and stream a held-out video. No download; ~10 min on 2 CPU "
                                   "cores (--quick: under a minute, toy size).")
    p.add_argument("--quick", action="store_true", help="toy size (tests, smoke checks)")
    p.add_argument("--out", default=None, help="run directory (default runs/demo[-quick])")
    p.add_argument("--workers", type=int, default=None, help="data loading processes")
    p.add_argument("--epochs", type=int, default=None,
                   help="training epochs of both models (default 14; fewer on a slow machine)")
    p.add_argument("--no-progress", action="store_true")
    p.set_defaults(func=cmd_demo)
