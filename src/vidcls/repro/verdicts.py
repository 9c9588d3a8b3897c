"""A verdict per claim of the papers, computed from the accuracy cells with the rule stated in
its text: reproduced, **not reproduced**, *inconclusive* (the data cannot decide) or not run.

Differences between two cells are compared with their standard error over seeds
(:func:`_diff`), so a verdict says plainly where a pattern did not show.
"""
from __future__ import annotations

import math

from vidcls.repro.experiments import ATTENTIONS, SHIFT_DIVS, fraction_name
from vidcls.repro.summary import cell, motion_kind

INCONCLUSIVE = "inconclusive"


def _verdict(ok: bool | str | None, text: str) -> dict:
    badge = {True: "reproduced", False: "**not reproduced**", INCONCLUSIVE: "*inconclusive*",
             None: "not run"}[ok]
    return {"ok": ok, "text": text, "badge": badge}


def _diff(a: dict, b: dict, metric: str = "top1") -> tuple[float, float]:
    """Mean difference ``a - b`` and its standard error from the seed-to-seed spread."""
    d = a[metric][0] - b[metric][0]
    se = math.sqrt(a[metric][1] ** 2 / a["n"] + b[metric][1] ** 2 / b["n"])
    return d, se


def verdict_table1(s: dict) -> list[dict]:
    out = []
    a_tsn, a_tsm = cell(s, "table1", "appearance", "TSN"), cell(s, "table1", "appearance", "TSM")
    if a_tsn and a_tsm:
        d, se = _diff(a_tsm, a_tsn)
        tol = max(5.0, 2 * se)
        out.append(_verdict(d >= -tol, f"appearance: TSM − TSN = {d:+.1f} ± {se:.1f} points "
                                       f"(rule: TSM ≈ TSN or better: ≥ −max(5, 2 standard "
                                       f"errors) = {-tol:.1f})"))
    else:
        out.append(_verdict(None, "appearance: not run"))
    t_tsn, t_tsm = cell(s, "table1", "temporal", "TSN"), cell(s, "table1", "temporal", "TSM")
    if t_tsn and t_tsm:
        d, se = _diff(t_tsm, t_tsn)
        w = t_tsn["within_pair_acc"][0]
        out.append(_verdict(d >= 20.0 and w <= 65.0,
                            f"temporal: TSM − TSN = {d:+.1f} ± {se:.1f} points, TSN within-pair "
                            f"accuracy {w:.1f} % (rule: TSM ≥ TSN + 20 points and TSN within a "
                            f"pair ≤ 65 %, chance = 50 %)"))
    else:
        out.append(_verdict(None, "temporal: not run"))
    return out


def verdict_shift(s: dict) -> list[dict]:
    kind = motion_kind(s, "shift")
    curves = {place: [cell(s, "shift", kind, f"{place} {fraction_name(2 / d)}")
                      for d in SHIFT_DIVS]
              for place in ("inplace", "residual")}
    if not all(c for cs in curves.values() for c in cs):
        return [_verdict(None, "shift: not run (or incomplete)")]
    diffs = [_diff(r, i) for i, r in zip(curves["inplace"], curves["residual"])]
    better = sum(d > 2 * se for d, se in diffs)
    worse = sum(d < -2 * se for d, se in diffs)
    listed = ", ".join(f"{fraction_name(2 / k)}: {d:+.1f} ± {se:.1f}" for k, (d, se) in
                       zip(SHIFT_DIVS, diffs))
    ok = (False if worse else True if better and all(d >= 0 for d, _ in diffs)
          else INCONCLUSIVE)
    out = [_verdict(ok, f"residual − in-place per proportion: {listed} points; clearly better "
                        f"(> 2 standard errors) at {better}, clearly worse at {worse} of "
                        f"{len(diffs)} (rule: never worse, better somewhere; otherwise "
                        f"inconclusive)")]
    res = curves["residual"]
    best = max(range(len(res)), key=lambda i: res[i]["top1"][0])
    quarter = SHIFT_DIVS.index(8)
    gap, se = _diff(res[best], res[quarter])
    text = (f"residual accuracy peaks at {fraction_name(2 / SHIFT_DIVS[best])} "
            f"({res[best]['top1'][0]:.1f} %); 1/4 reaches {res[quarter]['top1'][0]:.1f} %")
    if best == quarter:
        out.append(_verdict(True, text + " (rule: the peak is at 1/4)"))
    else:
        ok = INCONCLUSIVE if gap <= 2 * se else False
        out.append(_verdict(ok, text + f"; gap {gap:.1f} ± {se:.1f} points (rule: the peak is "
                                       f"at 1/4; inconclusive when 1/4 is within 2 standard "
                                       f"errors of the peak)"))
    return out


def verdict_online(s: dict) -> list[dict]:
    tsn = cell(s, "online", "temporal", "TSN (no shift)")
    bi = cell(s, "online", "temporal", "offline (bi-directional)")
    uni = cell(s, "online", "temporal", "online (uni-directional)")
    if not (tsn and bi and uni):
        return [_verdict(None, "online: not run")]
    d, se = _diff(uni, bi)
    gain, _ = _diff(uni, tsn)
    tol = max(10.0, 2 * se)
    return [_verdict(gain >= 20.0 and d >= -tol,
                     f"online (uni-directional) − offline (bi-directional) = {d:+.1f} ± "
                     f"{se:.1f} points; online − TSN = {gain:+.1f} points (rule: the online "
                     f"model keeps most of the temporal gain: ≥ TSN + 20 and ≥ offline − "
                     f"max(10, 2 standard errors) = {-tol:.1f})")]


def verdict_attention(s: dict, num_classes: int = 4) -> list[dict]:
    motion = motion_kind(s, "attention")
    cells = {(k, a): cell(s, "attention", k, a) for k in ("appearance", motion)
             for a in ATTENTIONS}
    if not all(cells.values()):
        return [_verdict(None, "attention: not run (or incomplete)")]
    out = []
    chance = 100.0 / num_classes
    for kind in ("appearance", motion):
        others = [a for a in ATTENTIONS if a != "space"]
        top = max(others, key=lambda a: cells[(kind, a)]["top1"][0])
        gap, se = _diff(cells[(kind, top)], cells[(kind, "space")])
        best = max(cells[(kind, a)]["top1"][0] for a in ATTENTIONS)
        if best < chance + 15:
            out.append(_verdict(INCONCLUSIVE, f"{kind}: no scheme learned the task (best "
                                              f"{best:.1f} %, chance {chance:.0f} %): nothing "
                                              f"to compare (rule: some scheme ≥ chance + 15)"))
        elif kind == "appearance":
            tol = max(10.0, 2 * se)
            out.append(_verdict(gap <= tol, f"appearance: best other scheme ({top}) − space = "
                                            f"{gap:+.1f} ± {se:.1f} points (rule: space not "
                                            f"far behind: ≤ max(10, 2 standard errors) = "
                                            f"{tol:.1f})"))
        else:
            w = cells[(motion, "space")]["within_pair_acc"][0]
            out.append(_verdict(gap >= 20.0, f"{kind}: best other scheme ({top}) − space = "
                                             f"{gap:+.1f} ± {se:.1f} points; space within a "
                                             f"pair {w:.1f} % (rule: space far behind, ≥ 20 "
                                             f"points)"))
    return out
