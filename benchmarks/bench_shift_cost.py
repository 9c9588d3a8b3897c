"""What the temporal shift costs: TSM-R50 / TSN-R50 latency at every thread count, precision and
memory format (eager PyTorch, batch 1, 8 x 224, inference).

Three models with identical weights, interleaved round after round (median of per-round
ratios, :func:`vidcls.repro.timing.paired_ratio`):

* ``TSN``: ResNet-50 without shifts;
* ``TSM``: the default TSM (residual shift, shift_div 8: 1/4 of the channels move);
* ``TSM, clone``: TSM with every shift replaced by ``x.clone()`` -- the same new tensor per
  shifted block but no channel moved: the floor of any out-of-place shift (the identity path
  needs the unshifted input, so the shifted one is a new tensor). ``TSM / clone`` is what the
  movement itself costs beyond that copy.

The header gives the CPU capability and the matmul peak measured in this run.

    python benchmarks/bench_shift_cost.py --repeats 10
"""
from __future__ import annotations

import argparse
import statistics

import torch
from torch import nn

from vidcls.models import create_model
from vidcls.ops.temporal_shift import TemporalShift
from vidcls.repro.timing import interleaved, machine_line, paired_ratio


class CloneInsteadOfShift(nn.Module):
    """The data movement floor of an out-of-place shift: a copy, no channel moved."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x.clone()


def models(channels_last: bool) -> dict[str, nn.Module]:
    torch.manual_seed(0)
    tsn = create_model("tsn_resnet50", num_classes=400, num_frames=8).eval()
    tsm = create_model("tsm_resnet50", num_classes=400, num_frames=8).eval()
    clone = create_model("tsm_resnet50", num_classes=400, num_frames=8).eval()
    for m in (tsm, clone):
        m.load_state_dict(tsn.state_dict())
    for block in clone.modules():
        if isinstance(getattr(block, "shift_branch", None), TemporalShift):
            block.shift_branch = CloneInsteadOfShift()
    out = {"TSN": tsn, "TSM": tsm, "TSM, clone": clone}
    if channels_last:
        out = {k: m.to(memory_format=torch.channels_last) for k, m in out.items()}
    return out


def measure(threads: int, precision: str, channels_last: bool, repeats: int, size: int):
    torch.set_num_threads(threads)
    nets = models(channels_last)
    x = torch.randn(1, 8, 3, size, size)

    def runner(model):
        def run():
            with torch.inference_mode(), torch.autocast("cpu", torch.bfloat16,
                                                        enabled=precision == "bf16"):
                model(x)
        return run

    times = interleaved({k: runner(m) for k, m in nets.items()}, repeats, warmup=2)
    return {"tsn_ms": 1e3 * statistics.median(times["TSN"]),
            "tsm_tsn": paired_ratio(times, "TSM", "TSN"),
            "clone_tsn": paired_ratio(times, "TSM, clone", "TSN"),
            "tsm_clone": paired_ratio(times, "TSM", "TSM, clone")}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--repeats", type=int, default=10)
    ap.add_argument("--size", type=int, default=224)
    ap.add_argument("--threads", type=int, nargs="+", default=[1, 2])
    ap.add_argument("--precision", nargs="+", default=["fp32", "bf16"])
    args = ap.parse_args()
    print(machine_line())
    print(f"batch 1, 8 x {args.size}, eager, {args.repeats} interleaved rounds per row")
    print("| threads | precision | layout | TSN ms | TSM / TSN | clone / TSN | TSM / clone |")
    print("|---|---|---|---|---|---|---|")
    for threads in args.threads:
        for precision in args.precision:
            for channels_last in (False, True):
                r = measure(threads, precision, channels_last, args.repeats, args.size)
                layout = "channels_last" if channels_last else "NCHW"
                print(f"| {threads} | {precision} | {layout} | {r['tsn_ms']:.0f} | "
                      f"{r['tsm_tsn']:.3f} | {r['clone_tsn']:.3f} | {r['tsm_clone']:.3f} |",
                      flush=True)


if __name__ == "__main__":
    main()
