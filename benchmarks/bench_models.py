"""Model benchmarks of the core issue, in one command: TSM vs TSN, TimeSformer vs HF.

Runs ``bench_tsm.py`` (TSM-R50 / TSN-R50 latency for shift_div 8/4/2, residual vs in-place, and
the shift op against the reference formulation) and ``bench_timesformer.py`` (TimeSformer-B
divided vs HF transformers with identical weights: latency, peak memory, bf16; joint attention
memory at 16 frames; latency growth 8 -> 96 frames) one after the other, so neither steals the
CPU from the other. Every ratio is measured against its baseline inside the same run.

    python benchmarks/bench_models.py                  # full settings (tens of minutes on 2 cores)
    python benchmarks/bench_models.py --quick          # smoke run: small repeats and sizes
"""
from __future__ import annotations

import argparse
import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent

QUICK = {
    "bench_tsm.py": ["--repeats", "2", "--op-repeats", "5", "--size", "112"],
    "bench_timesformer.py": ["--repeats", "1", "--depth", "2", "--growth-frames", "8,16",
                             "--skip", "bf16"],
}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="small repeats and sizes")
    parser.add_argument("--threads", type=int, default=None, help="torch threads for both")
    args = parser.parse_args()
    status = 0
    for script in ("bench_tsm.py", "bench_timesformer.py"):
        cmd = [sys.executable, str(HERE / script)]
        if args.quick:
            cmd += QUICK[script]
        if args.threads:
            cmd += ["--threads", str(args.threads)]
        print(f"$ {' '.join(cmd[1:])}", flush=True)
        status |= subprocess.call(cmd)
    return status


if __name__ == "__main__":
    sys.exit(main())
