"""``docs/results.md`` and its plots, rendered from the benchmark's result files only.

``render_results(accuracy_jsonl, cost_json, docs_dir)`` (``vidcls bench report``) reads

* the accuracy results of ``vidcls bench accuracy`` (one JSON line per run),
* the cost results of ``vidcls bench cost`` (``cost.json``),
* what the explain step (:mod:`vidcls.repro.examples`) left: ``img/explain_*.png`` and
  ``results/explain.json``, when it ran,

and writes the page: mean ± standard deviation over seeds per cell
(:mod:`~vidcls.repro.summary`), the tables (:mod:`~vidcls.repro.tables`), one matplotlib PNG per
experiment in ``docs/img/`` (:mod:`~vidcls.repro.plots`), and a verdict per claim computed from
the numbers with the rule stated next to it (:mod:`~vidcls.repro.verdicts`), so the page says
plainly where a pattern was *not* reproduced. Rendering loads no model and runs nothing: the
same files always give the same page. The raw files are copied next to the page
(``results/``), so it can be redrawn from them alone.
"""
from __future__ import annotations

import json
import math
import shutil
from pathlib import Path

from vidcls.repro.accuracy import read_jsonl
from vidcls.repro.examples import EXAMPLE_NAMES, FOCUS_FILE
from vidcls.repro.plots import (plot_attention, plot_latency_frames, plot_online, plot_shift,
                                plot_table1)
from vidcls.repro.experiments import ATTENTIONS
from vidcls.repro.summary import by_start, cell, motion_kind, num_classes
from vidcls.repro.tables import (START_NAMES, attention_md, comparisons_md, cost_md, fmt,
                                 online_md, setup_md, shift_md, shift_overhead_md, table1_md)
from vidcls.repro.verdicts import (INCONCLUSIVE, verdict_attention, verdict_online,
                                   verdict_shift, verdict_table1)


def _ran(ss: dict[str, dict], experiment: str) -> dict[str, dict]:
    """The starts (-> summary) from which ``experiment`` has results."""
    return {st: s for st, s in ss.items() if any(k[0] == experiment for k in s)}


def _verdicts(s: dict, nc: int) -> dict[str, list[dict]]:
    return {"table1": verdict_table1(s), "shift": verdict_shift(s),
            "online": verdict_online(s), "attention": verdict_attention(s, nc)}


def _lines(vs_by_start: dict[str, dict[str, list[dict]]], experiment: str,
           starts: list[str]) -> str:
    """The verdict bullets of one experiment, per start (named when there are two)."""
    out = []
    for st in starts:
        for v in vs_by_start[st][experiment]:
            who = f"{START_NAMES[st]}, " if len(starts) > 1 else ""
            out.append(f"- {who}{v['badge']}: {v['text']}")
    return "\n".join(out)


def _shift_why(ok: dict[str, bool | str | None]) -> list[str]:
    """What the shift verdicts mean, by start (``ok``: start -> the placement verdict)."""
    if ok.get("pretrained") is None:
        if ok.get("scratch") in (True, None):
            return []
        return ["Why this may differ from the paper: its case for the residual shift is that "
                "an in-place shift damages the spatial features of the ImageNet-pretrained "
                "2-D network it starts from (the identity path carries them), and that moving "
                "many channels does the same. These models are trained from scratch: there "
                "are no pretrained features to protect, and an in-place shift, which mixes "
                "time on every path, gives the network its temporal signal more directly. The "
                "comparison the paper makes needs the pretrained start (`--start "
                "pretrained`).", ""]
    text = ("The paper's case for the residual shift is that an in-place shift damages the "
            "spatial features of the pretrained 2-D network it starts from (the identity path "
            "carries them), and that moving many channels does the same. The pretrained "
            "columns test exactly that: same data, recipe and budget, the backbone starting "
            "from an image model, on a task where those features matter.")
    if ok["pretrained"] is True:
        text += (" From the pretrained start the residual placement comes out ahead, as in "
                 "the paper" + (", while from scratch it does not: the advantage is the "
                               "protection of pretrained features." if ok.get("scratch")
                               is not True else "."))
    elif ok["pretrained"] == INCONCLUSIVE:
        text += (" From the pretrained start the differences stay within 2 standard errors: "
                 "the seeds cannot decide. Next step: 5 seeds (`--seeds 5 --only shift`), "
                 "then the `full` preset.")
    else:
        text += (" Even from the pretrained start the numbers do not show the paper's "
                 "ordering at this scale. Next step: the `full` preset (ResNet-50 at 64 px, "
                 "8 classes, 300 videos per class, a longer pretraining, 5 seeds) on a GPU, "
                 "where the pretrained features are closer to ImageNet's in strength; and a "
                 "real pretrained ResNet (`vidcls train --init`) on a Something-Something "
                 "subset.")
    return [text, ""]


def _attention_direction(s: dict) -> str:
    """When the best scheme that attends across time finds the moving object but not its
    direction (within-pair accuracy near chance), say so: the verdict alone would read as
    "learned the temporal task"."""
    kind = motion_kind(s, "attention")
    cells = {a: cell(s, "attention", kind, a) for a in ATTENTIONS if a != "space"}
    cells = {a: c for a, c in cells.items() if c}
    if not cells:
        return ""
    top = max(cells, key=lambda a: cells[a]["top1"][0])
    within, pair = cells[top]["within_pair_acc"][0], cells[top]["pair_acc"][0]
    if within > 65.0:
        return ""
    return (f" What they learn is *which* object moves, not which way: `{top}` picks the "
            f"right pair of time-reversed classes {pair:.0f} % of the time but the right one "
            f"within it {within:.0f} % (chance 50 %). Telling the moving object from the still "
            f"ones already takes attention across frames, which `space` lacks; the order of "
            f"the frames is not learned within this budget.")


def _attention_why(ok: dict[str, bool | str | None], direction: str = "") -> list[str]:
    """What the temporal attention verdicts mean, by start (``direction``: see
    :func:`_attention_direction`)."""
    if ok.get("pretrained") is None:
        if ok.get("scratch") != INCONCLUSIVE:
            return []
        return ["Why: a vision transformer has no built-in notion of locality or motion and "
                "learns it from data; with a hundred or so training videos and no pretrained "
                "start, these tiny models do not get there within the budget (the ResNets, "
                "whose convolutions build locality in, do). The paper's attention table "
                "starts every variant from an ImageNet-pretrained ViT, which is what the "
                "pretrained start (`--start pretrained`) imitates.", ""]
    if ok["pretrained"] is True:
        gain = ("do far better than `space` on the temporal task" if direction else
                "learn the temporal task and `space` stays far behind")
        return ["From the pretrained ViT (temporal attention initialised from the spatial "
                f"one) the schemes that attend across time {gain}, the paper's pattern; "
                "from scratch the same tiny "
                "models, same budget, " + {INCONCLUSIVE: "do not learn it.",
                                           True: "show it too."}.get(ok.get("scratch"),
                                                                     "do not show it.")
                + direction, ""]
    lead = ("From the pretrained ViT too, no scheme learned the temporal task within the "
            "budget." if ok["pretrained"] == INCONCLUSIVE else
            "Even from the pretrained ViT the numbers do not show the paper's pattern at "
            "this scale.")
    return [lead + " Next step: the `full` preset (a 6-block ViT of width 192 at 64 px, "
            "150 pretraining epochs) on a GPU, or a real ImageNet ViT (`vidcls convert` of a "
            "timm ViT, `vidcls train --init`) on a Something-Something subset.", ""]


def results_markdown(records: list[dict], cost: dict | None, images: dict[str, str],
                     img_rel: str = "img", focus: dict | None = None) -> str:
    """The page's markdown from the records, the cost results, the images drawn (name ->
    path; a section's image is linked when its name is there) and the explain focus scores.

    Every accuracy table and verdict is given per start (from scratch, pretrained) side by
    side, for the starts the experiment was run from."""
    pretrain = [r for r in records if r["experiment"] == "pretrain"]
    records = [r for r in records if r["experiment"] != "pretrain"]
    ss = by_start(records) or {"scratch": {}}
    nc = num_classes(records)
    vs = {st: _verdicts(s, nc) for st, s in ss.items()}
    starts = list(ss)

    def img(name: str, alt: str) -> str:
        return f"![{alt}]({img_rel}/{name}.png)\n" if name in images else ""

    parts = [
        "# Results: the article's claims, rerun at small scale",
        "",
        "Generated by `vidcls bench report` from the raw results of `vidcls bench accuracy` "
        "and `vidcls bench cost` (do not edit by hand; rerun the three commands). Every "
        "accuracy cell is the mean ± standard deviation over seeds; dots in the plots are the "
        "individual seeds. Each verdict applies the rule written next to it to these numbers.",
        "",
        "Reproduce: `vidcls bench accuracy --preset small` (2 CPU cores, about 90 minutes; "
        "`--preset full` on a GPU), `vidcls bench cost`, then `vidcls bench report`. The raw "
        "numbers behind this page are in [results/accuracy.jsonl](results/accuracy.jsonl) "
        "(one line per training run) and [results/cost.json](results/cost.json); "
        "`vidcls bench report --accuracy docs/results/accuracy.jsonl --cost "
        "docs/results/cost.json --no-explain` redraws the page from them without training.",
        "",
        "## Claims at a glance",
        "",
        "| claim (source) | " + " | ".join(
            START_NAMES[st] if len(starts) > 1 else "verdict" for st in starts) + " |",
        "|---|" + "---|" * len(starts),
    ]

    def second(v: list[dict]) -> dict:
        return v[1] if len(v) > 1 else v[0]

    claims = [("TSM ≈ TSN on appearance-dominated data (TSM paper, Table 1)",
               lambda v: v["table1"][0]),
              ("TSM ≫ TSN on temporal data; TSN cannot order frames (TSM paper, Table 1)",
               lambda v: v["table1"][1]),
              ("residual shift ≥ in-place shift (TSM paper, Fig. 3)", lambda v: v["shift"][0]),
              ("accuracy peaks near 1/4 of the channels shifted (TSM paper, Fig. 3)",
               lambda v: second(v["shift"])),
              ("online (uni-directional) TSM keeps the temporal modelling (TSM paper, §4)",
               lambda v: v["online"][0]),
              ("space-only attention is competitive on appearance (TimeSformer, Table 1)",
               lambda v: v["attention"][0]),
              ("space-only attention falls far behind on temporal data (TimeSformer, Table 1)",
               lambda v: second(v["attention"]))]
    for claim, pick in claims:
        parts.append(f"| {claim} | " + " | ".join(pick(vs[st])["badge"] for st in starts)
                     + " |")
    parts += ["", "### Setup", "", setup_md(records, pretrain), ""]
    if records:
        n_val = records[0].get("num_val") or 0
        if n_val:
            err = 100 * math.sqrt(0.25 / n_val)
            parts += ["**Reading these numbers.** Each run is scored on the same "
                      f"{n_val} held-out videos, so one run's accuracy carries a sampling error "
                      f"of about ±{err:.0f} points (binomial, at 50 %); the ± in the tables is "
                      "the spread over seeds (model initialisation and data order), and the "
                      "verdicts compare differences with their standard error over seeds. "
                      "These are tiny models trained for minutes on tiny clips: a pattern that "
                      "shows here is evidence for the mechanism, one that does not may need "
                      "the scale of the papers (the `full` preset).", ""]

    t1, sh, on, at = (_ran(ss, e) or {starts[0]: ss[starts[0]]}
                      for e in ("table1", "shift", "online", "attention"))
    shift_kind = motion_kind(next(iter(sh.values())), "shift")
    att_kind = motion_kind(next(iter(at.values())), "attention")
    parts += ["## 1. TSN vs TSM (TSM paper, Table 1)", "",
              "Same ResNet backbone, data, recipe and budget; TSM adds the bi-directional "
              "residual shift of 1/8 of the channels each way. On `temporal` every class has a "
              "time-reversed twin, so a model blind to frame order gets the pair right (\"right "
              "pair\") but is at 50 % within it (\"within pair\" = top-1 / right pair). "
              f"Chance is {100 / nc:.0f} %.", "",
              table1_md(t1), "", img("accuracy_table1", "TSN vs TSM"),
              _lines(vs, "table1", list(t1)), ""]
    parts += ["## 2. Shift proportion and placement (TSM paper, Fig. 3)", "",
              f"`{shift_kind}` data"
              + (" (which object moves which way: the shapes matter as much as the motion)"
                 if shift_kind == "objects" else "")
              + "; proportion = channels moved in both directions together "
              "(`shift_div` 16, 8, 4, 2 → 1/8, 1/4, 1/2, all); in-place = shift on the block "
              "input (identity path shifted too), residual = shift inside the residual branch.",
              "", shift_md(sh), "", img("accuracy_shift", "shift proportion"),
              _lines(vs, "shift", list(sh)), ""]
    parts += _shift_why({st: vs[st]["shift"][0]["ok"] for st in sh})
    parts += ["## 3. Online vs offline TSM", "",
              "Uni-directional shift (past → present only, streamable frame by frame with "
              "`vidcls stream`) vs the bi-directional offline shift, `temporal` data.", "",
              online_md(on), "", img("accuracy_online", "online vs offline"),
              _lines(vs, "online", list(on)), ""]
    parts += ["## 4. TimeSformer attention schemes (TimeSformer paper, Table 1)", "",
              "A tiny TimeSformer (see the setup; the paper fine-tunes an ImageNet ViT-B, far "
              "beyond a CPU budget) with each attention scheme, "
              + ("from scratch and from the same pretrained image ViT (its spatial attention "
                 "copied into the other stages, as the reference code does)"
                 if "pretrained" in at else "trained from scratch")
              + f", same data and budget, on `appearance` and `{att_kind}`. Cost columns: the "
              "tiny model as trained (batch 1, CPU), and ViT-B at 8x224 from `vidcls bench "
              "cost`.", "",
              attention_md(at, cost), "", img("accuracy_attention", "attention schemes"),
              _lines(vs, "attention", list(at)), ""]
    parts += _attention_why({st: second(vs[st]["attention"])["ok"] for st in at},
                            _attention_direction(at["pretrained"]) if "pretrained" in at else "")
    if cost:
        m = cost["machine"]
        parts += ["## 5. Cost: parameters, GFLOPs, latency, memory", "",
                  f"Measured on {m.get('processor') or m.get('platform')} with {m['threads']} "
                  f"thread(s) (load average {m.get('load_average', 0):.1f} when it started: "
                  f"other jobs shared the machine, so latencies are upper bounds), torch "
                  f"{m['torch']}, batch 1, inference. GFLOPs = multiply-accumulates per clip "
                  f"(the papers' convention), counted on the `meta` device. Latency: plain = a "
                  f"whole forward pass measured; ᵇ = embedding + depth x one block measured on "
                  f"the full token grid; ᵉ = extrapolated from smaller measured inputs in "
                  f"proportion to FLOPs. Peak memory = peak resident size of the measuring "
                  f"process (weights included). bf16 = weights and input cast to bfloat16; "
                  f"this CPU has no native bf16 arithmetic, so bf16 is emulated and slower.", "",
                  cost_md(cost), "",
                  "Our GFLOPs count matrix multiplications and convolutions only (no softmax, "
                  "normalisation or activation functions), hence a few percent below the "
                  "papers' totals.", "",
                  "### The shift's latency overhead (TSM paper, §3)", "",
                  shift_overhead_md(cost), "",
                  "### Comparisons per patch token (TimeSformer paper, §3)", "",
                  "Keys each patch query is compared with, summed over a block's attention "
                  "stages. Ours is counted from the partitions in `vidcls.models.attention`; "
                  "`divided` differs by one because, as in the reference code, the cls token "
                  "takes no part in the temporal stage.", "",
                  comparisons_md(cost), "",
                  "### Latency vs clip length", "",
                  img("cost_latency_frames", "latency vs frames"), ""]
    if any(k.startswith("explain") for k in images):
        parts += ["## 6. Where the models look (`vidcls explain`)", "",
                  "The first held-out video of each model's motion dataset (`temporal` for "
                  "TSN/TSM, the attention table's for TimeSformer), explained with the first "
                  "seed's checkpoints (TimeSformer: the pretrained start's, when there is "
                  "one): Grad-CAM for TSN/TSM (on the last ResNet stage with at least "
                  "a 7x7 map: `layer1` on these 32-pixel clips, `layer4` at 224 pixels), "
                  "attention rollout (space and time, heads averaged) for TimeSformer. Top "
                  "row: the frames the model sees; bottom row: the heat map over them.", ""]
        if focus:
            parts += ["Does the moving object light up? Over all held-out videos of that data: "
                      "the share of the heat that falls on the object's pixels (where a pixel "
                      "differs from its median over time: the background is static) divided by "
                      "the share of the frame the object covers. 1 = no preference.", "",
                      "| model | method | data | heat on the object vs uniform | videos |",
                      "|---|---|---|---|---|"]
            names = {"explain_tsm": "TSM", "explain_tsn": "TSN",
                     "explain_timesformer": "TimeSformer (divided)"}
            for key, st in focus.items():
                how = st["method"] + (f" ({st['layer']})" if st["method"] == "gradcam" else "")
                data = (f"{st.get('kind', 'temporal')}, "
                        f"{START_NAMES[st.get('start', 'scratch')]}")
                parts.append(f"| {names.get(key, key)} | {how} | {data} | "
                             f"{fmt(st['focus'], 2)} x | {st['n']} |")
            parts.append("")
        for name, title in (("explain_tsm", "TSM (Grad-CAM)"), ("explain_tsn", "TSN (Grad-CAM)"),
                            ("explain_timesformer", "TimeSformer, divided (attention rollout)")):
            if name in images:
                parts += [f"**{title}**", "", img(name, title)]
    return "\n".join(parts).rstrip() + "\n"



def render_results(accuracy: str | Path | None, cost: str | Path | None,
                   docs_dir: str | Path = "docs") -> Path:
    """Regenerate ``docs_dir/results.md`` and its plots in ``docs_dir/img/`` from the result
    files; returns the page's path."""
    docs = Path(docs_dir)
    img_dir = docs / "img"
    img_dir.mkdir(parents=True, exist_ok=True)
    records = read_jsonl(accuracy) if accuracy else []
    cost_data = json.loads(Path(cost).read_text()) if cost and Path(cost).is_file() else None
    images: dict[str, str] = {}
    focus: dict[str, dict] = {}
    runs = [r for r in records if r["experiment"] != "pretrain"]
    if runs:
        ss = by_start(runs)
        nc = num_classes(runs)
        first = next(iter(ss.values()))  # table1 and online: the first start's
        for name, fn in (("accuracy_table1", lambda p: plot_table1(first, p, nc)),
                         ("accuracy_shift", lambda p: plot_shift(ss, p)),
                         ("accuracy_online", lambda p: plot_online(first, p)),
                         ("accuracy_attention", lambda p: plot_attention(ss, p, nc))):
            if fn(img_dir / f"{name}.png"):
                images[name] = str(img_dir / f"{name}.png")
    raw = docs / "results"  # the raw numbers next to the page: it can be regenerated from them
    raw.mkdir(exist_ok=True)
    if runs:  # what the explain step left, this time or in an earlier report
        for name in EXAMPLE_NAMES:
            if (img_dir / f"{name}.png").is_file():
                images[name] = str(img_dir / f"{name}.png")
        if (raw / FOCUS_FILE).is_file():
            focus = json.loads((raw / FOCUS_FILE).read_text())
    if cost_data and plot_latency_frames(cost_data, img_dir / "cost_latency_frames.png"):
        images["cost_latency_frames"] = str(img_dir / "cost_latency_frames.png")
    for src, name in ((accuracy, "accuracy.jsonl"), (cost if cost_data else None, "cost.json")):
        if src and Path(src).resolve() != (raw / name).resolve():
            shutil.copyfile(src, raw / name)
    page = docs / "results.md"
    page.write_text(results_markdown(records, cost_data, images, focus=focus),
                    encoding="utf-8")
    return page
