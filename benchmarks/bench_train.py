"""Training throughput (clips/s) of one optimizer step: forward + backward + SGD update.

Measures, in one run and on random uint8 clips (no decoding, so the model alone is timed):
  - fp32 vs bf16 autocast,
  - contiguous vs channels_last weights (CNNs),
  - 1 process vs N processes (PyTorch DDP, gloo on CPU / NCCL on CUDA) at the same global batch,
    with the cores split between the processes.

    python benchmarks/bench_train.py                       # tsm_resnet18, 8 x 64 x 64, batch 8
    python benchmarks/bench_train.py --model tsm_resnet50 --size 224 --batch 4 --procs 1 2
    python benchmarks/bench_train.py --model timesformer_base --size 224 --option depth=4

Ratios within one run are comparable; absolute numbers depend on the machine and its load
(the script prints both wall time and process CPU time so a busy machine is visible).
"""
from __future__ import annotations

import argparse
import json
import os
import socket
import sys

import torch
import torch.distributed as dist
import torch.multiprocessing as mp
import yaml

from vidcls.engine.runtime import resolve_precision
from vidcls.repro.timing import machine_line, time_calls


def build(args, num_classes=10):
    from vidcls.models import create_model

    torch.manual_seed(0)
    options = {k: yaml.safe_load(v) for k, v in (o.split("=", 1) for o in args.option)}
    if args.model.startswith("timesformer"):
        options.setdefault("img_size", args.size)
    return create_model(args.model, num_classes=num_classes, num_frames=args.frames, **options)


def time_steps(model, batch, args, precision: str, channels_last: bool, ddp=None):
    """Median seconds of one training step (after warm-up) and CPU seconds per step."""
    from vidcls.data.transforms import normalize as normalize_clip
    from vidcls.engine.runtime import autocast_context

    model.train()
    if channels_last:
        model.to(memory_format=torch.channels_last)
    train_model = ddp or model
    opt = torch.optim.SGD(model.parameters(), lr=1e-3, momentum=0.9)
    g = torch.Generator().manual_seed(0)
    clip = torch.randint(0, 256, (batch, args.frames, 3, args.size, args.size), dtype=torch.uint8,
                         generator=g)
    target = torch.randint(0, 10, (batch,), generator=g)
    mean = torch.tensor([0.45] * 3)
    std = torch.tensor([0.225] * 3)
    device = torch.device("cpu")

    def step():
        x = normalize_clip(clip, mean, std)
        with autocast_context(device, precision):
            logits = train_model(x)
        loss = torch.nn.functional.cross_entropy(logits.float(), target)
        loss.backward()
        opt.step()
        opt.zero_grad(set_to_none=True)

    times = time_calls(step, args.steps, warmup=args.warmup)
    model.to(memory_format=torch.contiguous_format)
    return times.median, times.cpu_median


def _ddp_worker(rank, world, port, args, queue):
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    torch.set_num_threads(max(1, args.threads // world))
    dist.init_process_group("gloo", rank=rank, world_size=world)
    model = build(args)
    ddp = torch.nn.parallel.DistributedDataParallel(model)
    sec, cpu = time_steps(model, args.batch // world, args, "fp32", args.channels_last, ddp=ddp)
    t = torch.tensor([sec])
    dist.all_reduce(t, op=dist.ReduceOp.MAX)  # a step ends when the slowest process is done
    if rank == 0:
        queue.put((t.item(), cpu))
    dist.destroy_process_group()


def run_ddp(args, world):
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    ctx = mp.get_context("spawn")
    queue = ctx.Queue()
    procs = [ctx.Process(target=_ddp_worker, args=(r, world, port, args, queue))
             for r in range(world)]
    for p in procs:
        p.start()
    result = queue.get(timeout=1800)
    for p in procs:
        p.join()
    return result


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", default="tsm_resnet18")
    ap.add_argument("--frames", type=int, default=8)
    ap.add_argument("--size", type=int, default=64)
    ap.add_argument("--batch", type=int, default=8, help="global batch (clips per step)")
    ap.add_argument("--steps", type=int, default=5)
    ap.add_argument("--warmup", type=int, default=2)
    ap.add_argument("--threads", type=int, default=torch.get_num_threads())
    ap.add_argument("--precision", nargs="+", default=["fp32", "bf16"])
    ap.add_argument("--channels-last", action="store_true",
                    help="use channels_last in the DDP runs too")
    ap.add_argument("--procs", type=int, nargs="+", default=[1, 2],
                    help="process counts for the DDP comparison (1 = plain, no DDP)")
    ap.add_argument("--option", action="append", default=[], metavar="KEY=VALUE")
    ap.add_argument("--json", default=None, help="also write the results to this JSON file")
    args = ap.parse_args(argv)
    torch.set_num_threads(args.threads)

    cnn = args.model.startswith(("tsm_", "tsn_"))
    rows = []
    print(f"# {machine_line()}")
    print(f"# train.precision=auto picks {resolve_precision('auto', 'cpu')} on this CPU")
    print(f"# {args.model}, {args.frames} frames x {args.size}x{args.size}, global batch "
          f"{args.batch}, {args.threads} threads, torch {torch.__version__}")
    print(f"{'setting':<34}{'clips/s':>9}{'s/step':>9}{'cpu s/step':>12}")

    def report(name, sec, cpu):
        rows.append({"setting": name, "clips_per_s": args.batch / sec, "sec_per_step": sec,
                     "cpu_sec_per_step": cpu})
        print(f"{name:<34}{args.batch / sec:>9.2f}{sec:>9.3f}{cpu:>12.3f}", flush=True)

    model = build(args)
    for precision in args.precision:
        for cl in ([False, True] if cnn else [False]):
            sec, cpu = time_steps(model, args.batch, args, precision, cl)
            report(f"1 process {precision}" + (" channels_last" if cl else ""), sec, cpu)
    for world in args.procs:
        if world < 2:
            continue
        if args.batch % world:
            print(f"skip {world} processes: batch {args.batch} not divisible", file=sys.stderr)
            continue
        sec, cpu = run_ddp(args, world)
        report(f"{world} processes DDP fp32" + (" channels_last" if args.channels_last else ""),
               sec, cpu)
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"args": vars(args), "rows": rows}, f, indent=2)
    return 0


if __name__ == "__main__":
    sys.exit(main())
