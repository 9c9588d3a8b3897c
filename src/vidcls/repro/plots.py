"""The matplotlib figures of ``docs/results.md`` (and of the demo's run directory): grouped bars
with the seeds as dots, the shift-proportion curves, latency vs clip length.

Each ``plot_*`` writes one PNG and returns whether there was anything to draw; matplotlib comes
from :mod:`vidcls.viz` (the report needs it: an ``ImportError`` says so).
"""
from __future__ import annotations

from pathlib import Path

from vidcls.repro.experiments import ATTENTIONS, PLACES, SHIFT_DIVS, fraction_name
from vidcls.repro.summary import cell
from vidcls.viz import require_pyplot, save_figure


def _plt():
    return require_pyplot("the benchmark report's plots")


COLORS = {"TSN": "#8c8c8c", "TSM": "#d62728", "inplace": "#1f77b4", "residual": "#d62728"}


def _bars(ax, groups: list[str], series: dict[str, list[dict | None]], metric: str = "top1",
          colors: dict | None = None) -> None:
    """Grouped bars (mean) with error bars (std) and the individual seeds as dots."""
    import numpy as np

    n = len(series)
    width = 0.8 / max(n, 1)
    x = np.arange(len(groups))
    for i, (name, cells) in enumerate(series.items()):
        pos = x - 0.4 + width * (i + 0.5)
        means = [c[metric][0] if c else float("nan") for c in cells]
        stds = [c[metric][1] if c else 0.0 for c in cells]
        color = (colors or {}).get(name)
        ax.bar(pos, means, width * 0.9, yerr=stds, capsize=3, label=name, color=color,
               alpha=0.85)
        for p, c in zip(pos, cells):
            if c:
                vals = c[f"{metric}_values"]
                ax.scatter([p] * len(vals), vals, s=9, color="black", zorder=3)
    ax.set_xticks(x)
    ax.set_xticklabels(groups)
    ax.set_ylim(0, 105)
    ax.grid(axis="y", alpha=0.3)


def _accuracy_figure(fig, ax, path: Path, num_classes: int | None, blind_label: str,
                     ylabel: str, title: str, ncol: int = 1) -> bool:
    """Finish an accuracy plot and save it: the reference levels -- chance (dotted, when
    ``num_classes`` is given) and 50 %, where a frame-order-blind model tops out on
    ``temporal`` (dashed) --, labels and the legend."""
    if num_classes:
        ax.axhline(100 / num_classes, color="black", ls=":", lw=1, label="chance")
    ax.axhline(50, color="black", ls="--", lw=0.8, label=blind_label)
    ax.set_ylabel(ylabel)
    ax.set_title(title)
    ax.legend(fontsize=8, ncol=ncol, loc="upper left")
    save_figure(fig, path)
    return True


def plot_table1(s: dict, path: Path, num_classes: int = 4) -> bool:
    plt = _plt()
    fig, ax = plt.subplots(figsize=(5.5, 3.8))
    kinds = ["appearance", "temporal"]
    series = {label: [cell(s, "table1", k, label) for k in kinds] for label in ("TSN", "TSM")}
    if not any(c for cs in series.values() for c in cs):
        plt.close(fig)
        return False
    _bars(ax, kinds, series, colors=COLORS)
    return _accuracy_figure(fig, ax, path, num_classes, "frame-order blind (temporal)",
                            "validation top-1 (%)",
                            "TSN vs TSM (mean ± std over seeds, dots = seeds)")


_START_STYLE = {"scratch": ("-", "o", "from scratch"), "pretrained": ("--", "s", "pretrained")}


def plot_shift(ss: dict[str, dict], path: Path) -> bool:
    """Accuracy vs proportion shifted, one line per placement and start (``ss``: start ->
    summary; solid = from scratch, dashed = pretrained)."""
    from vidcls.repro.summary import motion_kind

    plt = _plt()
    fig, ax = plt.subplots(figsize=(5.8, 3.9))
    xs = [0.0] + [2 / d for d in SHIFT_DIVS]
    names = ["none"] + [fraction_name(2 / d) for d in SHIFT_DIVS]
    drawn, kind = False, "temporal"
    for start, s in ss.items():
        kind = motion_kind(s, "shift")
        ls, marker, title = _START_STYLE[start]
        tsn = cell(s, "shift", kind, "TSN (no shift)")
        for place in PLACES:
            cells = [tsn] + [cell(s, "shift", kind, f"{place} {fraction_name(2 / d)}")
                             for d in SHIFT_DIVS]
            pts = [(i, c) for i, c in enumerate(cells) if c]
            if not pts:
                continue
            drawn = True
            label = f"{place} shift" + (f", {title}" if len(ss) > 1 else "")
            ax.errorbar([i for i, _ in pts], [c["top1"][0] for _, c in pts],
                        yerr=[c["top1"][1] for _, c in pts], marker=marker, ls=ls, capsize=3,
                        label=label, color=COLORS[place])
    if not drawn:
        plt.close(fig)
        return False
    ax.set_xticks(range(len(xs)))
    ax.set_xticklabels(names)
    ax.set_xlabel("proportion of channels shifted (both directions together)")
    ax.set_ylabel(f"{kind} top-1 (%)")
    ax.set_ylim(0, 105)
    ax.grid(alpha=0.3)
    ax.set_title("Shift proportion and placement (TSM paper, Fig. 3)")
    ax.legend(fontsize=7)
    save_figure(fig, path)
    return True


def plot_online(s: dict, path: Path) -> bool:
    plt = _plt()
    labels = ["TSN (no shift)", "offline (bi-directional)", "online (uni-directional)"]
    cells = [cell(s, "online", "temporal", label) for label in labels]
    if not any(cells):
        return False
    fig, ax = plt.subplots(figsize=(5.5, 3.5))
    series = {"top-1": cells}
    _bars(ax, ["TSN", "TSM offline\n(bi-dir.)", "TSM online\n(uni-dir.)"], series)
    return _accuracy_figure(fig, ax, path, None, "frame-order blind", "temporal top-1 (%)",
                            "Online (streamable) vs offline TSM")


def plot_attention(ss: dict[str, dict], path: Path, num_classes: int = 4) -> bool:
    """Bars per attention scheme: appearance and the motion kind, per start (``ss``: start
    -> summary)."""
    from vidcls.repro.summary import motion_kind

    plt = _plt()
    series, colors = {}, {}
    palette = {("appearance", "scratch"): "#2ca02c", ("motion", "scratch"): "#9467bd",
               ("appearance", "pretrained"): "#98df8a", ("motion", "pretrained"): "#c5b0d5"}
    for start, s in ss.items():
        for role, kind in (("appearance", "appearance"),
                           ("motion", motion_kind(s, "attention"))):
            name = kind + (f" ({start})" if len(ss) > 1 else "")
            series[name] = [cell(s, "attention", kind, a) for a in ATTENTIONS]
            colors[name] = palette[(role, start)]
    if not any(c for cs in series.values() for c in cs):
        return False
    fig, ax = plt.subplots(figsize=(7.5, 3.9))
    _bars(ax, list(ATTENTIONS), series, colors=colors)
    ax.set_ylim(0, 135 if len(ss) > 1 else 105)  # room for the legend above the bars
    ax.set_yticks(range(0, 101, 20))
    starts = " and ".join(("from scratch" if st == "scratch" else st) for st in ss)
    return _accuracy_figure(fig, ax, path, num_classes, "frame-order blind (motion)",
                            "validation top-1 (%)",
                            f"TimeSformer attention schemes (tiny model, {starts})", ncol=2)


def plot_latency_frames(cost: dict, path: Path) -> bool:
    """Block latency vs frames per attention scheme; hollow markers = extrapolated."""
    points = [p for p in cost.get("sweep", []) if "block_s" in p]
    if not points:
        return False
    plt = _plt()
    fig, ax = plt.subplots(figsize=(6, 4))
    for att in ATTENTIONS:
        pts = sorted((p for p in points if p["attention"] == att), key=lambda p: p["frames"])
        if not pts:
            continue
        line, = ax.plot([p["frames"] for p in pts], [12 * p["block_s"] for p in pts],
                        label=att, lw=1.2)
        for p in pts:
            measured = p["kind"] == "measured"
            ax.scatter(p["frames"], 12 * p["block_s"], s=28, zorder=3,
                       facecolors=line.get_color() if measured else "white",
                       edgecolors=line.get_color())
    ax.set_xscale("log", base=2)
    ax.set_yscale("log")
    frames = sorted({p["frames"] for p in points})
    ax.set_xticks(frames)
    ax.set_xticklabels([str(f) for f in frames])
    ax.set_xlabel("frames (224x224, 196 patches each)")
    ax.set_ylabel("12 blocks, fp32, batch 1 (s)")
    ax.set_title("TimeSformer-B latency vs clip length\n(filled = measured, hollow = "
                 "extrapolated by FLOPs)", fontsize=10)
    ax.grid(alpha=0.3, which="both")
    ax.legend(fontsize=8)
    save_figure(fig, path)
    return True


def plot_demo_accuracy(summary: dict, path: Path) -> bool:
    """The demo's TSN vs TSM bars (top-1 and mean class accuracy, with chance and the
    frame-order-blind level), from a ``vidcls demo`` ``summary.json``."""
    import numpy as np

    plt = _plt()
    models = summary["models"]
    labels = list(models)
    metrics = [("top1", "top-1"), ("mean_class_acc", "mean class")]
    fig, ax = plt.subplots(figsize=(5, 3.6))
    x = np.arange(len(metrics))
    width = 0.8 / len(labels)
    for i, label in enumerate(labels):
        vals = [models[label]["eval"][m] for m, _ in metrics]
        bars = ax.bar(x - 0.4 + width * (i + 0.5), vals, width * 0.9, label=label,
                      color=COLORS.get(label))
        for b, v in zip(bars, vals):
            ax.text(b.get_x() + b.get_width() / 2, v + 1, f"{v:.0f}", ha="center", fontsize=8)
    ax.set_xticks(x)
    ax.set_xticklabels([n for _, n in metrics])
    ax.set_ylim(0, 110)
    return _accuracy_figure(fig, ax, path, summary["settings"]["num_classes"],
                            "frame-order blind", "held-out accuracy (%)",
                            "vidcls demo: TSN vs TSM on temporal videos")
