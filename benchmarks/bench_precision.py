"""The predict path's precision and memory-format choice (``--precision auto``), measured.

For TSN-R50 and TSM-R50 (batch 1, 8 x 224) through :class:`vidcls.inference.predict.Predictor`
(``probabilities`` on a prepared clip, i.e. what ``vidcls predict`` runs per view): the plain
path (fp32, NCHW, batch norms as separate ops: what predict did before) against channels_last
fp32, batch norm folded into the convolutions, bf16 autocast, and what ``vidcls predict``
runs on this machine (``auto``: a checkpoint's model is folded, channels_last, and bf16 where
native). Interleaved rounds, median of per-round
ratios (:func:`vidcls.repro.timing.paired_ratio`). Also the TSM / TSN latency ratio per path
(the shift's cost). The header gives the CPU capability and the matmul peak measured in this
run: a ratio from an AVX2 machine (bf16 emulated) does not hold on an AVX-512-BF16 one.

    python benchmarks/bench_precision.py --threads 2 --repeats 5
"""
from __future__ import annotations

import argparse
import copy
import statistics

import torch

from vidcls.engine.checkpoint import build_meta
from vidcls.engine.inference import prepare_for_inference
from vidcls.inference.predict import Predictor
from vidcls.models import create_model
from vidcls.repro.timing import interleaved, machine_line, paired_ratio


def predictor(name: str, precision: str, plain: bool, fold: bool) -> Predictor:
    torch.manual_seed(0)
    model = create_model(name, num_classes=400, num_frames=8)
    pred = Predictor(model=model, meta=build_meta(model, classes=[str(i) for i in range(400)]),
                     precision=precision)
    if plain:  # what predict ran before: fp32 NCHW
        pred.model = copy.deepcopy(model).to(memory_format=torch.contiguous_format)
        pred.precision = "fp32"
    if fold:  # what Predictor(checkpoint) does with the model it loaded
        prepare_for_inference(pred.model, pred.device, precision, fold_batchnorm=True)
    return pred


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--repeats", type=int, default=5)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    print(machine_line())
    clip = torch.randint(0, 255, (8, 3, 224, 224), dtype=torch.uint8)
    paths = {"fp32 NCHW (plain)": ("fp32", True, False),
             "fp32 channels_last": ("fp32", False, False),
             "fp32 CL + BN folded": ("fp32", False, True),
             "bf16 + channels_last": ("bf16", False, False),
             "bf16 + CL + BN folded": ("bf16", False, True),
             "auto (vidcls predict)": ("auto", False, True)}
    fns, chosen = {}, None
    for name in ("tsn_resnet50", "tsm_resnet50"):
        for label, (precision, plain, fold) in paths.items():
            p = predictor(name, precision, plain, fold)
            if label.startswith("auto"):
                chosen = p.precision
            fns[f"{name} {label}"] = (lambda p=p: p.probabilities(clip))
    times = interleaved(fns, args.repeats, warmup=1)
    print(f"auto picked: {chosen} + channels_last + BN folded")
    print(f"{'path':<24}{'TSN-R50 ms':>12}{'TSM-R50 ms':>12}{'TSN speed-up':>14}"
          f"{'TSM speed-up':>14}{'TSM/TSN':>9}")
    for label in paths:
        tsn, tsm = f"tsn_resnet50 {label}", f"tsm_resnet50 {label}"
        print(f"{label:<24}{1e3 * statistics.median(times[tsn]):>12.0f}"
              f"{1e3 * statistics.median(times[tsm]):>12.0f}"
              f"{paired_ratio(times, 'tsn_resnet50 fp32 NCHW (plain)', tsn):>13.2f}x"
              f"{paired_ratio(times, 'tsm_resnet50 fp32 NCHW (plain)', tsm):>13.2f}x"
              f"{paired_ratio(times, tsm, tsn):>9.3f}")


if __name__ == "__main__":
    main()
