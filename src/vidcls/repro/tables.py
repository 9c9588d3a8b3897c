"""The markdown tables of ``docs/results.md``: accuracy per experiment (mean ± std over seeds)
and the cost tables of ``vidcls bench cost``, plus the setup paragraph that says what was run.
"""
from __future__ import annotations

import math

from vidcls.repro.cost import PAPER_COMPARISONS, comparisons_per_token, paper_comparisons
from vidcls.repro.experiments import ATTENTIONS, SHIFT_DIVS, fraction_name
from vidcls.repro.summary import cell, motion_kind


def fmt(ms: tuple[float, float], digits: int = 1) -> str:
    """``(mean, std)`` as ``"m ± s"``; a dash for a cell without values."""
    m, s = ms
    if math.isnan(m):
        return "–"
    return f"{m:.{digits}f} ± {s:.{digits}f}"


START_NAMES = {"scratch": "from scratch", "pretrained": "pretrained"}


def _present(ss: dict[str, dict]) -> list[str]:
    """The starts with results, in :data:`~vidcls.repro.experiments.STARTS` order (``ss`` is
    :func:`~vidcls.repro.summary.by_start`'s result)."""
    return [st for st in ss if ss[st]]


def _head(columns: list[str], starts: list[str]) -> list[str]:
    """Accuracy column titles, once per start (with the start named when there are two)."""
    if len(starts) <= 1:
        return columns
    return [f"{c}, {START_NAMES[st]}" for st in starts for c in columns]


def _row(cells: list[str]) -> str:
    return "| " + " | ".join(cells) + " |"


def _table(head: list[str], rows: list[list[str]]) -> str:
    return "\n".join([_row(head), "|" + "---|" * len(head)] + [_row(r) for r in rows])


def _acc(c: dict | None, metric: str = "top1") -> str:
    return fmt(c[metric]) if c else "–"


def _first(cells: list[dict | None]) -> dict | None:
    return next((c for c in cells if c), None)


def table1_md(ss: dict[str, dict]) -> str:
    """TSN vs TSM per start (``ss``: start -> summary)."""
    starts = _present(ss)
    head = ["model"] + _head(["appearance top-1 (%)", "temporal top-1 (%)",
                              "temporal: right pair (%)", "temporal: within pair (%)"],
                             starts) + ["params"]
    rows = []
    for label in ("TSN", "TSM"):
        cells, row = [], [label]
        for st in starts:
            a = cell(ss[st], "table1", "appearance", label)
            tt = cell(ss[st], "table1", "temporal", label)
            cells += [a, tt]
            row += [_acc(a), _acc(tt), _acc(tt, "pair_acc"), _acc(tt, "within_pair_acc")]
        ref = _first(cells)
        if ref:
            rows.append(row + [f"{ref['params'][0] / 1e6:.1f} M"])
    return _table(head, rows)


def shift_md(ss: dict[str, dict]) -> str:
    """Shift proportion x placement per start, on the shift experiment's motion kind."""
    starts = _present(ss)
    kind = motion_kind(next(iter(ss.values()), {}), "shift")
    head = ["channels shifted"] + _head(["in-place top-1 (%)", "residual top-1 (%)"], starts)
    rows = []
    tsns = [cell(ss[st], "shift", kind, "TSN (no shift)") for st in starts]
    if any(tsns):
        rows.append(["none (TSN)"] + [x for c in tsns for x in (_acc(c), _acc(c))])
    for d in SHIFT_DIVS:
        name = fraction_name(2 / d)
        row = [f"{name} (shift_div={d})"]
        for st in starts:
            row += [_acc(cell(ss[st], "shift", kind, f"inplace {name}")),
                    _acc(cell(ss[st], "shift", kind, f"residual {name}"))]
        rows.append(row)
    return _table(head, rows)


def online_md(ss: dict[str, dict]) -> str:
    starts = _present(ss)
    head = ["model"] + _head(["temporal top-1 (%)", "within pair (%)"], starts) + [
        "CPU latency / clip (ms)"]
    rows = []
    for label in ("TSN (no shift)", "offline (bi-directional)", "online (uni-directional)"):
        cells = [cell(ss[st], "online", "temporal", label) for st in starts]
        ref = _first(cells)
        if ref:
            rows.append([label] + [x for c in cells for x in (_acc(c),
                                                              _acc(c, "within_pair_acc"))]
                        + [f"{ref['latency_ms'][0]:.1f}"])
    return _table(head, rows)


def attention_md(ss: dict[str, dict], cost: dict | None = None) -> str:
    """Accuracy of the tiny trained models per start, with their cost and the ViT-B cost
    beside it."""
    starts = _present(ss)
    kind = motion_kind(next(iter(ss.values()), {}), "attention")
    vitb = {}
    for row in (cost or {}).get("rows", []):
        if row["model"] == "timesformer_base" and "attention" in row:
            vitb[row["attention"]] = row
    head = (["attention"] + _head(["appearance top-1 (%)", f"{kind} top-1 (%)",
                                   f"{kind} within pair (%)"], starts)
            + ["params (tiny)", "MFLOPs (tiny)", "latency (tiny, ms)",
               "comparisons / token (8x224)", "ViT-B 8x224: params / GFLOPs / latency fp32"])
    rows = []
    for att in ATTENTIONS:
        cells, row = [], [att]
        for st in starts:
            a = cell(ss[st], "attention", "appearance", att)
            m = cell(ss[st], "attention", kind, att)
            cells += [a, m]
            row += [_acc(a), _acc(m), _acc(m, "within_pair_acc")]
        ref = _first(cells)
        if not ref:
            continue
        b = vitb.get(att)
        if b:
            lat = b["latency"].get("fp32", {}).get("latency_s")
            big = (f"{b['params'] / 1e6:.1f} M / {b['gflops']:.0f} / "
                   + (f"{lat:.2f} s" if lat is not None else "–"))
            comp = str(b.get("comparisons", "–"))
        else:
            big, comp = "–", "–"
        rows.append(row + [f"{ref['params'][0] / 1e3:.0f} k", f"{1000 * ref['gflops'][0]:.1f}",
                           f"{ref['latency_ms'][0]:.1f}", comp, big])
    return _table(head, rows)


def _latency_cell(res: dict | None) -> str:
    if not res:
        return "–"
    if "latency_s" not in res:
        return "failed"
    mark = {"measured": "", "per block": " ᵇ", "extrapolated": " ᵉ"}.get(res["kind"], "")
    lat = res["latency_s"]
    text = f"{lat:.2f} s" if lat >= 1 else f"{1000 * lat:.0f} ms"
    return text + mark


def _mem_cell(res: dict | None) -> str:
    if not res or "peak_rss_mb" not in res:
        return "–"
    return f"{res['peak_rss_mb'] / 1024:.2f} GB"


def cost_md(cost: dict) -> str:
    """The main cost table: every model at its reference input."""
    dtypes = cost["settings"]["dtypes"]
    head = ["model", "input", "params (M)", "paper params (M)", "GFLOPs", "paper GFLOPs"]
    for d in dtypes:
        head += [f"latency {d}", f"peak memory {d}"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    order = ("resnet18", "resnet34", "resnet50", "resnet101", "mobilenetv2")

    def rank(row):  # TSN next to its TSM, backbones by size, then TimeSformer as listed
        name = row["model"]
        if name.startswith(("tsn_", "tsm_")):
            b = name[4:]
            return (0, order.index(b) if b in order else 9, name.startswith("tsm_"))
        return (1, 0, 0)

    for row in sorted(cost["rows"], key=rank):
        paper = row.get("paper") or {}
        cells = [row["label"], f"{row['frames']}x{row['size']}", f"{row['params'] / 1e6:.1f}",
                 f"{paper['params_m']:.1f}" if "params_m" in paper else "",
                 f"{row['gflops']:.1f}", f"{paper['gflops']:.0f}" if "gflops" in paper else ""]
        for d in dtypes:
            res = row["latency"].get(d)
            cells += [_latency_cell(res), _mem_cell(res)]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def shift_overhead_md(cost: dict) -> str:
    """TSN vs TSM latency: the shift's data movement is TSM's only extra cost."""
    shift = cost.get("shift") or {}
    best = shift.get("min_s") or shift.get("median_s")
    if not best:
        return "(not measured)"
    paper = {"TSM, 1/4 of the channels, residual": "~3 (1/8 each way)",
             "TSM, all channels, in-place": "13.7 (naive shift, CPU)"}
    paired = shift.get("paired_overhead_pct", {})
    lines = [f"ResNet-50, 8x224, fp32, batch 1, {shift['threads']} thread(s); the five models "
             f"timed in turn for {shift['rounds']} rounds. Overhead = best run vs TSN's best "
             f"run; paired = median over rounds of the ratio to TSN in the same round. With "
             f"this few rounds on a shared CPU, differences of a few percent either way are "
             f"run-to-run noise; `benchmarks/bench_tsm.py` measures the overhead with many "
             f"interleaved rounds (docs/benchmarks.md).", "",
             "| model | latency (best) | overhead vs TSN (%) | paired overhead (%) "
             "| paper overhead (%) |", "|---|---|---|---|---|"]
    for label, t in best.items():
        pp = f"{paired[label]:+.1f}" if label in paired else "–"
        lines.append(f"| {label} | {t:.2f} s | {shift['overhead_pct'][label]:+.1f} | {pp} | "
                     f"{paper.get(label, '')} |")
    return "\n".join(lines)


def comparisons_md(cost: dict) -> str:
    lines = ["| attention | paper formula | per token at 8x224 (N=196, F=8): paper | ours | "
             "at 96x224 (F=96): ours |", "|---|---|---|---|---|"]
    rows = {(r["model"], r.get("attention")): r for r in cost["rows"]}
    for att in ATTENTIONS:
        b = rows.get(("timesformer_base", att))
        ours8 = b["comparisons"] if b else comparisons_per_token(att, 8, (14, 14))
        lines.append(f"| {att} | {PAPER_COMPARISONS[att]} | {paper_comparisons(att, 8, (14, 14))}"
                     f" | {ours8} | {comparisons_per_token(att, 96, (14, 14))} |")
    return "\n".join(lines)


def verdict_lines(vs: list[dict]) -> str:
    """The verdicts under a table, one bullet each: badge, then the numbers and the rule."""
    return "\n".join(f"- {v['badge']}: {v['text']}" for v in vs)


def _seeds_text(records: list[dict], seeds: list[int]) -> str:
    """``0, 1, 2``, or per experiment (and start) where they ran different seeds (e.g. a
    5-seed follow-up): ``0, 1, 2, 3, 4 for shift, attention from scratch; 0, 1, 2 for the
    others``."""
    by_cell: dict[tuple[str, str], set[int]] = {}
    for r in records:
        by_cell.setdefault((r["experiment"], r.get("start") or "scratch"), set()).add(r["seed"])
    sets = {tuple(sorted(v)) for v in by_cell.values()}
    if len(sets) <= 1:
        return ", ".join(map(str, seeds))
    common = min(sets, key=len)
    names: dict[tuple[int, ...], list[str]] = {}
    for exp in dict.fromkeys(e for e, _ in by_cell):
        starts = {st: tuple(sorted(v)) for (e, st), v in by_cell.items() if e == exp}
        if len(set(starts.values())) == 1:
            names.setdefault(next(iter(starts.values())), []).append(exp)
        else:
            for st, v in starts.items():
                names.setdefault(v, []).append(f"{exp} {START_NAMES.get(st, st)}")
    parts = [f"{', '.join(map(str, v))} for {', '.join(n)}" for v, n in names.items()
             if v != common]
    return "; ".join(parts + [f"{', '.join(map(str, common))} for the others"])


def setup_md(records: list[dict], pretrain: list[dict]) -> str:
    """What was run: data, recipe, seeds, pretraining and the compute it took."""
    if not records:
        return "(no accuracy results yet)"
    r0 = records[0]
    recipe = r0.get("recipe", {})
    data = recipe.get("data", {})
    runs = {r["key"]: r for r in records + pretrain if "reused_from" not in r}
    cpu = sum(r.get("cpu_seconds") or 0 for r in runs.values())
    wall = sum(r.get("seconds") or 0 for r in runs.values())
    fams = {}
    for r in records:
        fams.setdefault("TimeSformer" if r["model"].startswith("timesformer") else "TSN/TSM", r)
    recipes = "; ".join(f"{fam}: {r['recipe']['epochs']} epoch(s) at learning rate "
                        f"{r['recipe']['lr']}, batch {r['recipe'].get('batch_size')}"
                        for fam, r in fams.items())
    seeds = sorted({r["seed"] for r in records})
    kinds = {r["kind"] for r in records}
    vit = next((r["options"] for r in records if r["model"].startswith("timesformer")), None)
    text = (f"Preset `{r0.get('preset')}`. Data: the built-in synthetic datasets, "
            f"{data.get('num_classes')} classes, {data.get('videos_per_class')} videos per class "
            f"({int(100 * data.get('val_fraction', 0.2))} % held out for scoring), "
            f"{data.get('num_frames')}-frame videos of {data.get('size')}x{data.get('size')} "
            f"pixels: `temporal` (Something-Something-like: the class is only in the motion; "
            f"classes come in pairs, each video of the second class a video of the first played "
            f"backwards), `appearance` (Kinetics-like: the class is the object's shape and "
            f"colour family, visible in any single frame; position, motion, size and background "
            f"are random)")
    if "objects" in kinds:
        text += (" and `objects` (Something-Something-like, where what moves matters too: "
                 "three or four objects in their own lanes, one of which moves; the class is "
                 "which shape moves and which way, so a model needs both shape features and "
                 "the order of frames; pairs of time-reversed classes as in `temporal`)")
    text += (f". Clips of {recipe.get('num_frames')} frames (TSN segment sampling), "
             f"AdamW (weight decay {recipe.get('weight_decay')}), "
             f"cosine schedule, multi-scale crop, no flip (it would swap left and right); "
             f"{recipes}")
    if vit:
        text += (f"; the tiny TimeSformer: {vit.get('depth')} blocks of width "
                 f"{vit.get('embed_dim')}, {vit.get('patch_size')}-pixel patches")
    text += (f". Seeds {_seeds_text(records, seeds)} (model initialisation and data "
             f"order; the videos are the same). Scored after the last epoch on the held-out "
             f"videos, 1 clip x 1 centre crop.")
    if pretrain:
        parts = []
        for r in pretrain:
            pr = r.get("recipe", {})
            pd = pr.get("data", {})
            name = "ResNet (TSN/TSM)" if r["label"] == "cnn" else "ViT (TimeSformer)"
            parts.append(f"{name}: {pr.get('epochs')} epoch(s), {pr.get('num_frames', 1)} "
                         f"frame(s) per clip, {r['top1']:.1f} % top-1 on its "
                         f"{r.get('num_val', '?')} held-out videos (chance "
                         f"{100 / pd.get('num_classes', 8):.1f} %)")
        pd = pretrain[0]["recipe"]["data"]
        text += (" **Starts.** *From scratch*: random initialisation. *Pretrained*: like the "
                 "papers' ImageNet initialisation, the run starts from an image model of its "
                 "family, pretrained once (shared by every run and seed) on single frames of a "
                 f"separate {pd['num_classes']}-class image task (`appearance` videos of "
                 f"{min(pd['num_classes'], 8)} shapes"
                 + (" x 2 textures" if pd["num_classes"] > 8 else "")
                 + f", {pd['videos_per_class']} per class, drawn with another seed); "
                 "TimeSformer's temporal attention starts as a copy of the spatial one, as in "
                 "the reference code. " + "; ".join(parts) + ". Both starts train with the "
                 "same recipe and budget.")
    text += (f" Cost: {len(runs)} trainings, {wall / 60:.0f} min of run time in total (two at "
             f"a time) and {cpu / 60:.0f} CPU-minutes, i.e. about {cpu / 120:.0f} min on 2 "
             f"dedicated cores.")
    return text
