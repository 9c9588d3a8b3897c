"""``vidcls bench accuracy | cost | report``: argument parsing only; the work is in
:mod:`vidcls.repro` (``accuracy``, ``cost``, ``result_files``, ``write_results``) and
:func:`vidcls.demo.demo_plots`."""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

from vidcls.cli._common import fail


def _only(text: str | None) -> list[str] | None:
    """``"a, b,"`` -> ``["a", "b"]``; ``None`` or ``""`` -> ``None`` (everything)."""
    return [t.strip() for t in text.split(",") if t.strip()] if text else None


def cmd_bench_accuracy(args: argparse.Namespace) -> int:
    from vidcls.repro.accuracy import run_accuracy
    from vidcls.repro.experiments import PRESETS

    if args.preset not in PRESETS:
        return fail("bench accuracy", ValueError(
            f"unknown preset {args.preset!r}; choose one of {', '.join(PRESETS)}"))
    try:
        jsonl = run_accuracy(args.preset, args.out, only=_only(args.only), seeds=args.seeds,
                             starts=_only(args.start), jobs=args.jobs,
                             keep_checkpoints=args.keep_checkpoints,
                             pretrain_dir=args.pretrain_dir)
    except ValueError as err:
        return fail("bench accuracy", err)
    except RuntimeError as err:  # some runs failed; the others are recorded
        print(f"vidcls bench accuracy: {err}", file=sys.stderr)
        return 1
    if not args.no_report:
        from vidcls.repro import write_results

        page = write_results(jsonl, args.cost or None, args.docs)  # a missing cost: left out
        print(f"vidcls bench accuracy: report written to {page}")
    return 0


def cmd_bench_cost(args: argparse.Namespace) -> int:
    from vidcls.repro.cost import run_cost

    try:
        path = run_cost(args.out, quick=args.quick, max_seconds=args.max_seconds,
                        dtypes=tuple(_only(args.dtypes) or ["fp32"]), threads=args.threads,
                        sweep=not args.no_sweep)
    except ValueError as err:
        return fail("bench cost", err)
    if args.json:
        print(path.read_text())
    return 0


def cmd_bench_report(args: argparse.Namespace) -> int:
    from vidcls.demo import demo_plots
    from vidcls.repro import result_files, write_results

    try:
        if args.demo:
            for f in demo_plots(args.demo):
                print(f"vidcls bench report: wrote {f}")
            if not (args.accuracy or args.cost):
                return 0
        acc, cost = result_files(args.accuracy, args.cost)
        page = write_results(acc, cost, args.docs, explain=not args.no_explain)
    except (FileNotFoundError, ValueError, KeyError) as err:
        return fail("bench report", err)
    print(f"vidcls bench report: wrote {page} and plots in {Path(args.docs) / 'img'}/")
    return 0


def register(subparsers) -> None:
    """Add ``bench`` with its actions ``accuracy``, ``cost`` and ``report``."""
    from vidcls.repro import DEFAULT_ACCURACY, DEFAULT_COST  # torch-free: for the help texts

    bench = subparsers.add_parser("bench", description="Reproduce the papers' claims at small "
                                                       "scale and measure model costs; `vidcls "
                                                       "bench report` turns the results into "
                                                       "docs/results.md with plots.")
    actions = bench.add_subparsers(dest="bench_command", metavar="BENCH")

    def print_bench_help(args: argparse.Namespace) -> int:  # plain `vidcls bench`
        bench.print_help()
        return 0

    bench.set_defaults(func=print_bench_help)

    p = actions.add_parser("accuracy", help="TSN vs TSM, shift proportion, online shift, "
                                            "attention schemes on synthetic data, from "
                                            "scratch and pretrained",
                           description="Train and evaluate every cell of the four accuracy "
                                       "experiments (several seeds each) on the built-in "
                                       "synthetic datasets, from scratch and from an image-"
                                       "pretrained start. Results are appended to "
                                       "OUT/results.jsonl as runs finish; rerunning the "
                                       "command resumes.")
    p.add_argument("--preset", default="small",
                   help="toy (seconds, tests) | small (2 CPU cores, ~90 min) | full (a GPU)")
    p.add_argument("--only", default=None, metavar="LIST",
                   help="comma-separated experiments: table1,shift,online,attention")
    p.add_argument("--start", default=None, metavar="LIST",
                   help="comma-separated starts to run every selected experiment from: "
                        "scratch,pretrained (default: the preset's: shift and attention from "
                        "both, table1 and online from scratch)")
    p.add_argument("--seeds", type=int, default=None,
                   help="use the first N seeds of the preset (N above the preset's: seeds "
                        "0..N-1, e.g. 5 where a difference is within 2 standard errors)")
    p.add_argument("--jobs", type=int, default=None,
                   help="runs in parallel (default: one per CPU core; 1 on a GPU)")
    p.add_argument("--out", default=None,
                   help="output directory (default runs/bench/accuracy-PRESET)")
    p.add_argument("--pretrain-dir", default=None,
                   help="cache of the image pretraining, keyed by its recipe (default "
                        "OUT/pretrain); share one between output directories")
    p.add_argument("--keep-checkpoints", action="store_true",
                   help="keep every run's checkpoints (default: first seed's weights only)")
    p.add_argument("--no-report", action="store_true", help="don't regenerate DOCS/results.md")
    p.add_argument("--docs", default="docs", help="where results.md and img/ go")
    p.add_argument("--cost", default=DEFAULT_COST,
                   help="cost results to include in the report, if present")
    p.set_defaults(func=cmd_bench_accuracy)

    p = actions.add_parser("cost", help="params, GFLOPs, latency, peak memory of every model",
                           description="Measure parameters and GFLOPs (meta device) and "
                                       "latency and peak memory (a subprocess per measurement) "
                                       "of every model at its reference input, fp32 and bf16, "
                                       "plus TimeSformer block latency vs frames. Writes "
                                       "OUT/cost.json.")
    p.add_argument("--out", default="runs/bench", help="output directory (cost.json)")
    p.add_argument("--quick", action="store_true",
                   help="ResNet-50 TSN/TSM and TimeSformer-B only, fewer frame counts")
    p.add_argument("--max-seconds", type=float, default=30.0,
                   help="time budget per measurement; longer ones are timed per block or "
                        "extrapolated (marked in the table)")
    p.add_argument("--dtypes", default="fp32,bf16", help="comma-separated: fp32,bf16")
    p.add_argument("--threads", type=int, default=None, help="torch threads (default: all cores)")
    p.add_argument("--no-sweep", action="store_true", help="skip latency vs frames")
    p.add_argument("--json", action="store_true", help="print cost.json")
    p.set_defaults(func=cmd_bench_cost)

    p = actions.add_parser("report", help="docs/results.md and plots from the benchmark results",
                           description="Regenerate DOCS/results.md and DOCS/img/*.png from the "
                                       "accuracy JSONL and cost JSON (and the demo plots with "
                                       "--demo RUN_DIR).")
    p.add_argument("--accuracy", default=None,
                   help=f"accuracy results (default {DEFAULT_ACCURACY})")
    p.add_argument("--cost", default=None, help=f"cost results (default {DEFAULT_COST})")
    p.add_argument("--docs", default="docs")
    p.add_argument("--demo", default=None, metavar="RUN_DIR",
                   help="also draw accuracy.png and explain_*.png into a `vidcls demo` run")
    p.add_argument("--no-explain", action="store_true",
                   help="skip the explain images (they need the kept checkpoints)")
    p.set_defaults(func=cmd_bench_report)
