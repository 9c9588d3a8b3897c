"""``vidcls models``: the published checkpoints ``--model NAME`` accepts (:mod:`vidcls.zoo`)."""
from __future__ import annotations

import argparse
import json

from vidcls.cli._common import fail


def format_models(entries, cached: set[str]) -> str:
    """The table: one line per entry, the accuracy as its source reports it."""
    rows = [("name", "model", "dataset", "input", "top-1", "size", "source")]
    for e in entries:
        mark = " *" if e.name in cached else ("" if e.downloadable else " (no confirmed URL)")
        rows.append((e.name, e.model, e.dataset, f"{e.num_frames}x{e.input_size}",
                     f"{e.top1:.1f}" if e.top1 is not None else "-",
                     f"{e.size_mb:.0f}MB" if e.size_mb else "-", e.source + mark))
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]) - 1)]
    right = {3, 4, 5}  # numbers line up on the right
    lines = ["  ".join(c.rjust(w) if i in right else c.ljust(w)
                       for i, (c, w) in enumerate(zip(r, widths))) + "  " + r[-1]
             for r in rows]
    lines.insert(1, "-" * len(lines[0]))
    lines.append("top-1: the source's own figure, under its protocol (clips x crops: "
                 "vidcls models --json); * = in the cache.")
    lines.append("Use: vidcls predict VIDEO --model NAME (downloaded, verified and converted on "
                 "first use; cache: $VIDCLS_HOME, default ~/.cache/vidcls)")
    return "\n".join(lines)


def cmd_models(args: argparse.Namespace) -> int:
    from vidcls.zoo import cached_checkpoint, list_entries

    entries = list_entries(args.dataset)
    if args.dataset and not entries:
        known = sorted({e.dataset for e in list_entries()})
        return fail("models", ValueError(f"no published model for dataset {args.dataset!r}; "
                                         f"known: {', '.join(known)}"))
    if args.json:
        print(json.dumps([{**e.to_dict(), "cached": cached_checkpoint(e.name) is not None}
                          for e in entries], indent=2))
    else:
        print(format_models(entries, {e.name for e in entries if cached_checkpoint(e.name)}))
    return 0


def register(subparsers) -> None:
    """Add ``models``."""
    p = subparsers.add_parser("models", description="List the published checkpoints that "
                              "--model NAME loads (predict, eval, stream, explain, export, "
                              "train --init): downloaded, checked, converted and cached on "
                              "first use under $VIDCLS_HOME (default ~/.cache/vidcls); "
                              "VIDCLS_OFFLINE=1 uses the cache only, VIDCLS_MIRROR=URL "
                              "downloads through a mirror.")
    p.add_argument("--dataset", default=None, help="only this dataset's (e.g. kinetics400)")
    p.add_argument("--json", action="store_true", help="print JSON (name, url, format, "
                   "dataset, num_frames, top1, protocol, ...)")
    p.set_defaults(func=cmd_models)
