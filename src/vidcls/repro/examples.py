"""The explain step of the benchmark report: where the trained models look.

Run before the page is rendered -- by ``vidcls bench accuracy`` and by ``vidcls bench report``
unless ``--no-explain`` (:func:`vidcls.repro.write_results`) -- because it needs the kept
first-seed checkpoints and runs the models, which rendering never does. It writes result files
that :mod:`vidcls.repro.report` reads like the others:

* ``DOCS/img/explain_tsm.png``, ``explain_tsn.png``, ``explain_timesformer.png``: ``vidcls
  explain``'s grid (frames over heat maps) of the first held-out video of the model's motion
  dataset (``temporal`` for TSN/TSM, the attention experiment's for TimeSformer);
* ``DOCS/results/explain.json``: per model, how much of the heat falls on the moving object
  (:func:`focus_stats`), ``{name: {"focus": [mean, std], "n", "method", "layer"}}``.
"""
from __future__ import annotations

import json
import shutil
from pathlib import Path

from vidcls.repro.experiments import DEFAULT_SHIFT
from vidcls.repro.summary import mean_std

# The models explained, by the name of their image, with the start preferred when both ran:
# the default TSM and TSN on ``temporal`` (from scratch, as table1), divided TimeSformer on its
# motion kind (pretrained, where it learns the task).
def _start(r: dict) -> str:
    return r.get("start", "scratch")


_EXAMPLES = {
    "explain_tsm": (lambda r: r["kind"] == "temporal" and r["model"].startswith("tsm_") and
                    all(r["options"].get(k) == v for k, v in DEFAULT_SHIFT.items()), "scratch"),
    "explain_tsn": (lambda r: r["kind"] == "temporal" and r["model"].startswith("tsn_"),
                    "scratch"),
    "explain_timesformer": (lambda r: r["kind"] != "appearance" and
                            r["model"].startswith("timesformer") and
                            r["options"].get("attention") == "divided", "pretrained"),
}
EXAMPLE_NAMES = tuple(_EXAMPLES)
FOCUS_FILE = "explain.json"  # in DOCS/results/


def explain_png(video: str, checkpoint: Path, target: Path) -> str:
    """``vidcls explain``'s grid image of ``video`` saved as ``target`` (the mp4 and JSON it
    also writes are dropped); returns ``target`` as a string."""
    from vidcls.inference.explain import explain_video

    tmp = target.parent / f".{target.stem}"
    explain_video(video, checkpoint, tmp)
    (tmp / "explain.png").replace(target)
    shutil.rmtree(tmp)
    return str(target)


def focus_stats(checkpoint: Path, videos: list[str]) -> dict:
    """Mean :func:`~vidcls.inference.explain.object_focus` of a checkpoint's heat maps over
    ``videos``."""
    from vidcls.inference.explain import explain_clip, object_focus
    from vidcls.inference.predict import Predictor

    pred = Predictor(checkpoint)
    values, method, layer = [], "", ""
    for video in videos:
        clip, x = pred.load_clip(video)  # uint8 and normalised (T, 3, H, W)
        ex = explain_clip(pred.model, x)
        method, layer = ex.method, ex.layer
        v = object_focus(clip, ex.maps)
        if v is not None:
            values.append(v)
    return {"focus": mean_std(values), "n": len(values), "method": method, "layer": layer}


def explain_examples(records: list[dict], img_dir: Path, stats: dict | None = None
                     ) -> dict[str, str]:
    """Run ``vidcls explain`` on a held-out motion video with the kept first-seed checkpoints
    of TSN, TSM and TimeSformer (divided); returns ``{name: png path}``. With ``stats`` (a
    dict), also fills it with each model's :func:`focus_stats` over all held-out videos."""
    import yaml

    out = {}
    for name, (match, preferred) in _EXAMPLES.items():
        rs = sorted((r for r in records if r.get("run_dir") and match(r)),
                    key=lambda r: (_start(r) != preferred, r["seed"]))
        for r in rs:
            ckpt = Path(r["run_dir"]) / "checkpoints" / "last"
            if not (ckpt / "model.safetensors").is_file():
                continue
            cfg = Path(r["run_dir"]) / "run.yaml"
            root = Path(yaml.safe_load(cfg.read_text())["data"]["root"])
            lines = [x for x in (root / "val.txt").read_text().split("\n") if x.strip()]
            videos = [str(root / x.rsplit(" ", 1)[0]) for x in lines]
            video = videos[0]  # the first held-out video (class 0)
            out[name] = explain_png(video, ckpt, img_dir / f"{name}.png")
            if stats is not None:
                stats[name] = {**focus_stats(ckpt, videos), "kind": r["kind"],
                               "start": _start(r)}
            break
    return out


def write_examples(accuracy: str | Path, docs_dir: str | Path = "docs") -> dict[str, dict]:
    """The explain images and focus scores of an accuracy results file, written into
    ``docs_dir`` (``img/`` and ``results/explain.json``); returns the scores."""
    from vidcls.repro.accuracy import read_jsonl

    runs = [r for r in read_jsonl(accuracy) if r["experiment"] != "pretrain"]
    if not runs:
        return {}
    docs = Path(docs_dir)
    (docs / "img").mkdir(parents=True, exist_ok=True)
    (docs / "results").mkdir(exist_ok=True)
    focus: dict[str, dict] = {}
    explain_examples(runs, docs / "img", focus)
    (docs / "results" / FOCUS_FILE).write_text(json.dumps(focus, indent=1) + "\n")
    return focus
