"""``vidcls synth`` and ``vidcls data {check,info}``: thin wrappers over :mod:`vidcls.data`."""
from __future__ import annotations

import argparse
import time

from vidcls.cli._common import fail, parse_options

SPEC_HELP = ("dataset: FORMAT:ROOT (e.g. list:data/synth, ucf101:/data/UCF101), a dataset folder "
             "(format detected) or a list file")


def _load(args: argparse.Namespace):
    """The dataset of ``DATASET_SPEC --split --ann-file -o KEY=VALUE``."""
    from vidcls.data.formats import load_records

    options = parse_options(args.option, example="split_id=2, video_dir=/data/videos")
    return load_records(args.dataset, split=args.split, ann_file=args.ann_file, **options)


def cmd_synth(args: argparse.Namespace) -> int:
    from vidcls.data.synthetic import generate

    try:
        info = generate(args.out_dir, args.kind, num_classes=args.num_classes,
                        videos_per_class=args.videos_per_class, num_frames=args.frames,
                        size=args.size, seed=args.seed, val_fraction=args.val_fraction,
                        workers=args.workers, overwrite=args.force)
    except ValueError as err:
        return fail("synth", err)
    except OSError as err:  # unwritable or not a directory: name the place and the reason
        return fail("synth", OSError(f"cannot write the dataset to {args.out_dir}: "
                                     f"{err.strerror or err} ({err.filename or args.out_dir}); "
                                     f"choose a writable OUT_DIR"))
    what = "reused existing" if info["seconds"] == 0 else f"wrote in {info['seconds']:.1f} s"
    print(f"{args.kind} dataset in {info['root']} ({what}): {info['num_train']} train + "
          f"{info['num_val']} val videos, {len(info['classes'])} classes")
    print(f"  lists: {info['train_list']}, {info['val_list']}; classes: {info['classes_file']}")
    return 0


def cmd_check(args: argparse.Namespace) -> int:
    from vidcls.data.bad_files import check_records

    try:
        fmt, records, _ = _load(args)
    except (ValueError, FileNotFoundError) as err:
        return fail("data check", err)
    start = time.monotonic()
    report = check_records(records, workers=args.workers, mode=args.mode,
                           filename_tmpl=args.filename_tmpl, progress=not args.quiet)
    print(f"{fmt} dataset {args.dataset} ({args.split}): {report.summary(limit=args.show)}"
          f"  [{time.monotonic() - start:.1f} s]")
    if report.rotated:
        print(report.rotation_summary())
    if args.out:
        report.write(args.out)
        print(f"bad-file report written to {args.out}")
    return 1 if len(report) else 0


def cmd_info(args: argparse.Namespace) -> int:
    from vidcls.data.formats import class_counts

    try:
        fmt, records, classes = _load(args)
    except (ValueError, FileNotFoundError) as err:
        return fail("data info", err)
    counts = class_counts(records, len(classes))
    print(f"{fmt} dataset {args.dataset} ({args.split}): {len(records)} samples, "
          f"{len(classes)} classes")
    for i, (name, n) in enumerate(zip(classes, counts)):
        if i < args.show or args.show < 0:
            print(f"  {i:>4}  {n:>7}  {name}")
    if 0 <= args.show < len(classes):
        print(f"  ... {len(classes) - args.show} more classes (--show -1 lists all)")
    return 0


def _add_dataset_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("dataset", metavar="DATASET_SPEC", help=SPEC_HELP)
    p.add_argument("--split", default="train", help="train, val or test (default: train)")
    p.add_argument("--ann-file", default=None, help="annotation file (default: format's own)")
    p.add_argument("-o", "--option", action="append", default=[], metavar="KEY=VALUE",
                   help="format option, e.g. -o split_id=2 -o video_dir=/data/videos")


def register(subparsers) -> None:
    """Add ``synth`` and ``data`` (``check``, ``info``)."""
    p = subparsers.add_parser("synth",
                              description="Write a synthetic dataset as H.264 mp4 files plus "
                                          "train.txt, val.txt and classes.txt. 'temporal': the "
                                          "class is only in the motion (Something-Something-"
                                          "like); 'appearance': the class is in what is seen "
                                          "(Kinetics-like); 'objects': which of several objects "
                                          "moves which way (motion and appearance).")
    p.add_argument("out_dir", metavar="OUT_DIR")
    p.add_argument("--kind", choices=("temporal", "appearance", "objects"), default="temporal")
    p.add_argument("--num-classes", type=int, default=8)
    p.add_argument("--videos-per-class", type=int, default=50)
    p.add_argument("--frames", type=int, default=16, help="frames per video (default 16)")
    p.add_argument("--size", type=int, default=64, help="frame width = height (default 64)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--val-fraction", type=float, default=0.2)
    p.add_argument("--workers", type=int, default=2, help="encoding processes (default 2)")
    p.add_argument("--force", action="store_true",
                   help="regenerate even if OUT_DIR holds the same dataset")
    p.set_defaults(func=cmd_synth)

    data = subparsers.add_parser("data", description="Inspect datasets and find files that "
                                                     "fail to decode.")
    actions = data.add_subparsers(dest="data_command", metavar="ACTION", required=True)
    c = actions.add_parser("check", help="decode every file in parallel and report bad ones",
                           description="Scan a dataset in parallel and report files that would "
                                       "be skipped in training (missing, empty, truncated, not "
                                       "a video, audio only, undecodable). Exit code 1 when "
                                       "any file is bad.")
    _add_dataset_args(c)
    c.add_argument("--mode", choices=("open", "sample", "full"), default="sample",
                   help="open: open + index; sample: also decode 8 segment frames (default); "
                        "full: decode every frame")
    c.add_argument("--workers", type=int, default=2)
    c.add_argument("--filename-tmpl", default=None, help="rawframe template, e.g. img_{:05d}.jpg")
    c.add_argument("--out", default=None, help="write the report (path<TAB>reason, or .json)")
    c.add_argument("--show", type=int, default=20, help="bad files to print (default 20)")
    c.add_argument("--quiet", action="store_true", help="no progress line")
    c.set_defaults(func=cmd_check)

    i = actions.add_parser("info", help="samples and classes of a dataset",
                           description="Print the number of samples per class of a dataset "
                                       "split.")
    _add_dataset_args(i)
    i.add_argument("--show", type=int, default=20, help="classes to list (-1: all)")
    i.set_defaults(func=cmd_info)
