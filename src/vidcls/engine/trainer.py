"""The training loop: one process or many (``torchrun``), resumable bit for bit.

``fit(config)`` builds everything from the config, trains, validates every ``eval_every``
epochs and keeps two checkpoints in ``OUTPUT_DIR/checkpoints``: ``last`` (weights + full
training state, rewritten every epoch) and ``best`` (weights only, by ``eval.best_metric``).

What makes resuming exact: the sample order depends only on ``(seed, epoch)``
(``ShardedSampler``), the learning rate only on the optimizer step count (``LRSchedule``), and
the checkpoint stores optimizer, scheduler, grad-scaler and RNG states. Restoring them after
the model is built reproduces the uninterrupted run's state at the epoch boundary.

Stopping: SIGTERM / SIGINT set a flag that every process sees (all-reduced each step); the loop
finishes the current optimizer step, writes ``last`` with the position inside the epoch and
returns. A second Ctrl-C aborts at once (``TrainingAborted``), also in the middle of writing a
checkpoint: the previous one stays intact. A loss that becomes NaN/inf stops the run with
``TrainingDiverged`` without writing a checkpoint, so ``last`` stays the last good state.

The run directory (``engine.rundir``) is locked for the run, so a second training into it
stops at once; a directory that holds a run is only trained into again with ``resume``
(which refuses settings that differ from the saved run's) or ``overwrite``.

Unreadable videos are replaced by other clips in training and skipped (reported, not scored)
in validation; a split with no readable video at all ends with ``NoUsableVideos`` and a
bad-file report in ``OUTPUT_DIR/bad_files.txt``. Multi-label data (several labels per video,
``data.multi_label``) trains with BCE and selects ``best`` on validation mAP.

Scoring the validation set is ``engine.inference``; device, seeds, precision and the stop
flag are ``engine.runtime``; config -> model and datasets is ``engine.builders``.

Long because: construction, the epoch loop, validation, checkpoints and starting / stopping a
run all work on the ``Trainer``'s state (model, optimizer, scheduler, samplers, progress
counters); the run directory's own rules are ``engine.rundir``.
"""
from __future__ import annotations

import contextlib
import json
import math
import signal
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import torch
from torch import nn
from torch.utils.data import DataLoader

from vidcls.data.bad_files import NoUsableVideos
from vidcls.data.dataset import collate_clips
from vidcls.data.transforms import normalize
from vidcls.engine import builders
from vidcls.engine import checkpoint as ckpt
from vidcls.engine import rundir
from vidcls.engine.config import Config, ConfigError, resolve_accumulation, save_config
from vidcls.engine.distributed import (ShardedSampler, all_gather_strings, all_reduce_sum,
                                       barrier, cleanup_distributed, init_distributed)
from vidcls.engine.inference import run_inference, score_inference
from vidcls.engine.optim import (build_optimizer, build_scheduler, classification_loss,
                                 effective_lr, freeze_partial_bn, set_partial_bn_eval)
from vidcls.engine.runtime import (StopFlag, autocast_context, progress_bar, resolve_device,
                                   resolve_precision, seed_everything, set_deterministic)


class TrainingDiverged(RuntimeError):
    """The loss became NaN or infinite."""


class TrainingAborted(KeyboardInterrupt):
    """A second Ctrl-C stopped the run at once; the message names the checkpoint kept."""


@dataclass
class FitResult:
    output_dir: Path
    epochs_done: int
    best_metric: float | None
    history: list[dict] = field(default_factory=list)
    stopped_by: str | None = None  # "SIGTERM" / "SIGINT" when interrupted
    last_checkpoint: Path | None = None
    best_checkpoint: Path | None = None
    best_metric_name: str | None = None  # what ``best_metric`` is: "top1", "mAP", "loss" ...


class MetricsLogger:
    """JSON-lines metrics log + optional TensorBoard scalars (rank 0 only)."""

    def __init__(self, run_dir: Path, *, enabled: bool, tensorboard: bool):
        self.enabled = enabled
        self.tb = None
        if not enabled:
            return
        self.path = run_dir / "metrics.jsonl"
        if tensorboard:
            try:
                from torch.utils.tensorboard import SummaryWriter

                self.tb = SummaryWriter(log_dir=str(run_dir / "tensorboard"))
            except ImportError:
                print("vidcls: tensorboard is not installed; writing metrics.jsonl only",
                      file=sys.stderr)

    def log(self, record: dict, step: int) -> None:
        if not self.enabled:
            return
        record = {"time": round(time.time(), 3), "step": step, **record}
        with open(self.path, "a", encoding="utf-8") as f:
            f.write(json.dumps(record) + "\n")
        if self.tb is not None:
            kind = record.get("kind", "train")
            for k, v in record.items():
                if k not in ("time", "step", "epoch", "kind") and isinstance(v, (int, float)):
                    self.tb.add_scalar(f"{kind}/{k}", v, step)

    def close(self) -> None:
        if self.tb is not None:
            self.tb.close()


class Trainer:
    """Owns model, optimizer, data loaders and run directory for one ``fit``."""

    def __init__(self, cfg: Config, *, progress: bool = True, datasets=None, model=None):
        self.cfg = cfg
        self.progress = progress
        self.dist = init_distributed(resolve_device(cfg.device).type)
        self.device = resolve_device(cfg.device, self.dist.local_rank)
        self.out = Path(cfg.output_dir)
        self.ckpt_dir = self.out / "checkpoints"
        if cfg.train.deterministic:
            set_deterministic()
        seed_everything(cfg.seed)  # same initial weights on every process

        d = cfg.data
        if datasets is None:
            train_records, self.classes = builders.read_split(cfg, "train")
            val_records, val_classes = builders.read_split(cfg, "val")
            if len(val_classes) != len(self.classes):
                raise ConfigError(f"validation annotations have {len(val_classes)} classes, "
                                  f"training {len(self.classes)}; they must share one class list")
            self.multi_label = builders.is_multi_label(cfg, train_records, val_records)
        else:
            self.train_set, self.val_set, self.classes = datasets
            self.multi_label = bool(getattr(self.train_set, "multi_label", False))
        self.best_metric = self._selection_metric()
        self.num_classes = len(self.classes)
        if model is None:
            model = builders.build_model(cfg, self.num_classes, verbose=self.dist.is_main)
        self.model = model
        prep = builders.dataset_preprocessing(cfg, model.preprocessing)
        self.preprocessing = prep
        if datasets is None:
            self.train_set = builders.build_train_dataset(
                cfg, train_records, self.classes, prep, multi_label=self.multi_label,
                source=builders.split_source(cfg, "train"))
            self.val_set = builders.build_eval_dataset(
                cfg, val_records, self.classes, prep, multi_label=self.multi_label,
                source=builders.split_source(cfg, "val"))
            if d.cache_mb > 0 and d.workers > 0:  # workers copy the cache as it is at start
                for dataset in (self.train_set, self.val_set):
                    dataset.fill_cache()
        self.mean = torch.tensor(prep.mean, dtype=torch.float32, device=self.device)
        self.std = torch.tensor(prep.std, dtype=torch.float32, device=self.device)

        t = cfg.train
        self.accum = resolve_accumulation(t, d.batch_size, self.dist.world_size)
        self.global_batch = d.batch_size * self.dist.world_size * self.accum
        self.lr = effective_lr(t, self.global_batch)

        if t.partial_bn:
            freeze_partial_bn(self.model)
        if t.sync_bn and self.device.type != "cuda":
            raise ConfigError("config key train.sync_bn: SyncBatchNorm needs CUDA devices; "
                              "set train.sync_bn=false on CPU (or use train.partial_bn)")
        if t.sync_bn and self.dist.enabled:
            self.model = nn.SyncBatchNorm.convert_sync_batchnorm(self.model)
        self.model.to(self.device)
        if t.channels_last:
            self.model.to(memory_format=torch.channels_last)
        self.train_model = self.model
        if self.dist.enabled:
            ids = [self.device.index] if self.device.type == "cuda" else None
            self.train_model = nn.parallel.DistributedDataParallel(self.model, device_ids=ids)

        self.train_sampler = ShardedSampler(len(self.train_set), num_replicas=self.dist.world_size,
                                            rank=self.dist.rank, shuffle=True, seed=cfg.seed)
        self.val_sampler = ShardedSampler(len(self.val_set), num_replicas=self.dist.world_size,
                                          rank=self.dist.rank, shuffle=False)
        batches = -(-len(self.train_sampler) // d.batch_size)
        self.steps_per_epoch = batches // self.accum
        if t.max_steps_per_epoch:
            self.steps_per_epoch = min(self.steps_per_epoch, t.max_steps_per_epoch)
        if self.steps_per_epoch < 1:
            raise ConfigError(
                f"training set has {len(self.train_set)} clips, less than one optimizer step of "
                f"{self.global_batch} clips (batch_size x processes x accumulation); lower "
                f"data.batch_size or train.global_batch_size")
        self.optimizer = build_optimizer(self.model, t, self.lr)
        self.scheduler = build_scheduler(self.optimizer, t, self.steps_per_epoch, self.lr)
        # train.precision=auto: bf16 where the device computes it natively, else fp32; an
        # explicit choice is checked by autocast_context below, with the config key's message
        self.precision = t.precision
        if t.precision == "auto":
            try:
                self.precision = resolve_precision("auto", self.device)
            except ValueError as e:  # VIDCLS_PRECISION names something this device lacks
                raise ConfigError(f"config key train.precision: {e}") from None
        fp16 = self.precision == "fp16" and self.device.type == "cuda"
        self.scaler = torch.amp.GradScaler(self.device.type, enabled=fp16) if fp16 else None
        autocast_context(self.device, self.precision)  # validate precision/device early

        self.epoch = 0
        self.batches_done = 0  # micro-batches finished inside self.epoch (mid-epoch resume)
        self.global_step = 0
        self.best: float | None = None
        self.history: list[dict] = []

    # ---- construction -----------------------------------------------------------------
    def _selection_metric(self) -> str:
        """The validation metric that picks ``best``: ``eval.best_metric``; multi-label runs
        have no top-k and select on mAP (or on loss when that is asked for)."""
        key = self.cfg.eval.best_metric
        if self.multi_label:
            return "loss" if key == "loss" else "mAP"
        if key == "mAP":
            raise ConfigError("config key eval.best_metric: mAP needs multi-label data "
                              "(several labels per video, or data.multi_label=true); use top1")
        return key

    def _epoch_seed(self) -> int:
        """Same on every process: the dataset derives each clip's augmentation from
        ``(seed, epoch, index, torch.initial_seed())``, so with ``workers=0`` a clip gets the
        same crop whichever process loads it (N processes == 1 process with the same batch)."""
        return (self.cfg.seed * 1_000_003 + self.epoch * 7919) % 2**31

    def _loader(self, dataset, sampler, batch_size: int, *, epoch: int = 0) -> DataLoader:
        workers = self.cfg.data.workers
        g = torch.Generator().manual_seed(self.cfg.seed * 1_000_003 + epoch * 101)
        return DataLoader(dataset, batch_size=batch_size, sampler=sampler,
                          num_workers=workers, collate_fn=collate_clips,
                          pin_memory=self.device.type == "cuda", generator=g,
                          persistent_workers=False, drop_last=False,
                          prefetch_factor=2 if workers > 0 else None)

    # ---- checkpoints ------------------------------------------------------------------
    def _meta(self, metrics: dict | None) -> dict:
        # multi_label: predict / eval turn logits into independent sigmoid probabilities
        return ckpt.build_meta(self.model, classes=self.classes,
                               preprocessing=self.preprocessing, epoch=self.epoch,
                               batches_done=self.batches_done, global_step=self.global_step,
                               metrics=metrics or {}, multi_label=self.multi_label,
                               best_metric=self.best_metric, best=self.best,
                               config=self.cfg.to_dict())

    def save(self, metrics: dict | None = None, *, best: bool = False) -> None:
        """Write ``last`` (and ``best``) on rank 0; every process waits for it."""
        if self.dist.is_main:
            progress = {"epoch": self.epoch, "batches_done": self.batches_done,
                        "global_step": self.global_step, "best": self.best,
                        "history": self.history, "world_size": self.dist.world_size}
            state = ckpt.pack_train_state(optimizer=self.optimizer, scheduler=self.scheduler,
                                          scaler=self.scaler, progress=progress)
            meta = self._meta(metrics)
            ckpt.save_model_checkpoint(self.ckpt_dir / "last", self.model, meta,
                                       train_state=state)
            if best:
                ckpt.save_model_checkpoint(self.ckpt_dir / "best", self.model, meta)
        barrier(self.dist)

    def resume(self, path: str | Path) -> None:
        rundir.check_resumable(path, ckpt.read_meta(path).get("config"), self.cfg.to_dict(),
                               self.out)
        tensors, obj = ckpt.read_train_state(path)
        found = ckpt.resolve_checkpoint_dir(path)
        weights = ckpt.read_safetensors(found / ckpt.MODEL_FILE, checkpoint=found)
        self.model.load_state_dict({k: v.to(self.device) for k, v in weights.items()})
        prog = ckpt.restore_train_state(tensors, obj, optimizer=self.optimizer,
                                        scheduler=self.scheduler, scaler=self.scaler)
        if prog.get("world_size", self.dist.world_size) != self.dist.world_size:
            print(f"vidcls: resuming a {prog['world_size']}-process run with "
                  f"{self.dist.world_size} processes: the data order changes", file=sys.stderr)
        self.epoch = int(prog["epoch"])
        self.batches_done = int(prog.get("batches_done", 0))
        self.global_step = int(prog.get("global_step", 0))
        self.best = prog.get("best")
        self.history = list(prog.get("history", []))

    # ---- one epoch --------------------------------------------------------------------
    def train_epoch(self, logger: MetricsLogger, stop: StopFlag) -> dict:
        cfg, t = self.cfg, self.cfg.train
        model = self.train_model
        model.train()
        if t.partial_bn:
            set_partial_bn_eval(self.model)
        bs = cfg.data.batch_size
        skip = self.batches_done
        if skip == 0:
            # Randomness of an epoch (augmentation, dropout) depends only on (seed, epoch):
            # resuming at an epoch boundary replays it exactly. A mid-epoch
            # resume instead continues from the RNG state stored in the checkpoint.
            seed_everything(self._epoch_seed())
        self.train_sampler.set_epoch(self.epoch, skip=skip * bs)
        if hasattr(self.train_set, "set_epoch"):
            self.train_set.set_epoch(self.epoch)
        loader = self._loader(self.train_set, self.train_sampler, bs, epoch=self.epoch)
        steps_left = self.steps_per_epoch - skip // self.accum
        bar = progress_bar(total=self.steps_per_epoch,
                           desc=f"epoch {self.epoch + 1}/{t.epochs}",
                           enabled=self.progress and self.dist.is_main)
        if bar is not None:
            bar.update(skip // self.accum)
        sums = torch.zeros(3, dtype=torch.float64)  # loss*n, correct, n (this process)
        window = torch.zeros(3, dtype=torch.float64)
        window_start = time.perf_counter()
        bad: list[str] = []
        micro = 0
        steps = 0
        self.optimizer.zero_grad(set_to_none=True)
        it = iter(loader)
        while steps < steps_left:
            try:
                batch = next(it)
            except StopIteration:
                break
            except Exception:
                if stop.signum is not None:  # workers died with the signal
                    break
                raise
            bad.extend(batch.get("bad") or [])
            if batch["clip"] is None:  # nothing readable in this batch, even the substitutes
                if self.dist.enabled:  # the other processes would wait for its gradients
                    raise NoUsableVideos(self.train_set.source, bad, self.train_set.num_files)
                continue
            clip = batch["clip"].to(self.device, non_blocking=True)
            target = torch.as_tensor(batch["label"]).to(self.device, non_blocking=True)
            x = normalize(clip, self.mean, self.std)
            last_micro = micro + 1 == self.accum
            sync = contextlib.nullcontext() if (last_micro or not self.dist.enabled) \
                else model.no_sync()
            with sync:
                with autocast_context(self.device, self.precision):
                    logits = model(x)
                loss = classification_loss(logits, target, t.label_smoothing)
                scaled = loss / self.accum
                if self.scaler is not None:
                    self.scaler.scale(scaled).backward()
                else:
                    scaled.backward()
            n = clip.shape[0]
            with torch.no_grad():
                correct = ((logits.argmax(1) == target).sum().item()
                           if not target.is_floating_point() else 0.0)
            stats = torch.tensor([loss.item() * n, correct, n], dtype=torch.float64)
            window += stats
            micro += 1
            if not last_micro:
                continue
            micro = 0
            grad_norm = self._optimizer_step()
            steps += 1
            self.global_step += 1
            self.batches_done += self.accum
            # One small all-reduce per step: the loss for logging, "diverged" and "stop" flags,
            # so every process takes the same decision at the same step.
            flags = torch.tensor([window[0], window[1], window[2],
                                  float(not math.isfinite(window[0])),
                                  float(stop.signum is not None)], dtype=torch.float64)
            all_reduce_sum(flags, self.dist)
            sums += flags[:3]
            if flags[3] > 0:
                lr = self.scheduler.get_last_lr()[0]
                raise TrainingDiverged(
                    f"loss became {'nan' if math.isnan(flags[0]) else 'inf'} at epoch "
                    f"{self.epoch + 1}, step {self.global_step} (lr {lr:.3g}); "
                    f"stopped without saving, the last good checkpoint is kept in "
                    f"{self.ckpt_dir / 'last'}. Lower train.lr, set train.clip_grad_norm or use "
                    f"train.precision=fp32")
            elapsed = time.perf_counter() - window_start
            clips_per_s = flags[2].item() / max(elapsed, 1e-9)
            loss_avg = (flags[0] / flags[2]).item()
            lr = self.scheduler.get_last_lr()[0]
            if bar is not None:
                bar.set_postfix(loss=f"{loss_avg:.4f}", lr=f"{lr:.3g}",
                                clips_s=f"{clips_per_s:.1f}", refresh=False)
                bar.update(1)
            if self.global_step % t.log_every == 0:
                rec = {"kind": "train", "epoch": self.epoch, "loss": loss_avg, "lr": lr,
                       "clips_per_s": clips_per_s}
                if grad_norm is not None:
                    rec["grad_norm"] = grad_norm
                logger.log(rec, self.global_step)
            window.zero_()
            window_start = time.perf_counter()
            if flags[4] > 0:
                stop.signum = stop.signum or signal.SIGTERM
                break
        if bar is not None:
            bar.close()
        del it, loader
        if self.dist.enabled:
            bad = all_gather_strings(bad, self.dist)
        if steps_left > 0 and sums[2].item() == 0 and stop.signum is None:  # all unreadable
            raise NoUsableVideos(self.train_set.source, sorted(set(bad)),
                                 self.train_set.num_files)
        n = max(sums[2].item(), 1)
        top1 = None if self.multi_label else 100.0 * sums[1].item() / n
        return {"train_loss": sums[0].item() / n, "train_top1": top1, "bad": sorted(set(bad))}

    def _optimizer_step(self) -> float | None:
        t = self.cfg.train
        grad_norm = None
        if self.scaler is not None:
            self.scaler.unscale_(self.optimizer)
        if t.clip_grad_norm:
            params = [p for g in self.optimizer.param_groups for p in g["params"]]
            grad_norm = float(nn.utils.clip_grad_norm_(params, t.clip_grad_norm))
        if self.scaler is not None:
            self.scaler.step(self.optimizer)
            self.scaler.update()
        else:
            self.optimizer.step()
        self.optimizer.zero_grad(set_to_none=True)
        self.scheduler.step()
        return grad_norm

    def validate(self) -> dict:
        cfg = self.cfg
        bs = cfg.eval.batch_size or cfg.data.batch_size
        loader = self._loader(self.val_set, self.val_sampler, bs)
        result = run_inference(self.model, loader, device=self.device, mean=self.mean,
                               std=self.std, precision=self.precision,
                               dist_info=self.dist, progress=self.progress, desc="validate",
                               multi_label=self.multi_label)
        metrics = score_inference(result, self.num_classes)
        metrics.pop("confusion_matrix", None)
        metrics.pop("per_class_acc", None)
        metrics["bad"] = result["bad"]
        return metrics

    # ---- the whole run ----------------------------------------------------------------
    def fit(self, resume: str | Path | bool | None = None, *, overwrite: bool = False
            ) -> FitResult:
        """Train to ``train.epochs``. ``resume``: True = continue ``checkpoints/last`` when
        there is one, a path = continue that checkpoint. A run directory that already holds a
        run needs ``resume`` or ``overwrite`` (replace it)."""
        lock = rundir.RunDirLock(self.out) if self.dist.is_main else None
        self._on_every_rank(lock.acquire if lock else None)
        try:
            path = rundir.resume_path(self.ckpt_dir, resume)
            if path is not None:
                self.resume(path)
                if self.dist.is_main:
                    print(f"vidcls: resumed from {path} at epoch {self.epoch + 1}"
                          + (f", batch {self.batches_done}" if self.batches_done else ""),
                          file=sys.stderr)
            else:
                if resume and self.dist.is_main:
                    print(f"vidcls: nothing to resume in {self.ckpt_dir}; starting fresh",
                          file=sys.stderr)
                self._on_every_rank(lambda: rundir.start_fresh(self.out, overwrite=overwrite))
            return self._fit()
        except NoUsableVideos as err:
            if not self.dist.is_main:
                raise
            raise rundir.with_bad_file_report(err, self.out) from None
        except KeyboardInterrupt:
            last = rundir.describe_last(self.ckpt_dir)
            raise TrainingAborted(
                f"aborted by a second Ctrl-C; nothing was saved since the last checkpoint, "
                f"which is intact ({last})" if last else
                "aborted by a second Ctrl-C before the first checkpoint; nothing was saved"
            ) from None
        finally:
            if lock is not None:
                lock.release()

    def _on_every_rank(self, step) -> None:
        """Run ``step`` on rank 0 (``None``: nothing); when it fails, every process stops
        (rank 0 with its error), instead of the others waiting for it forever."""
        error = None
        if self.dist.is_main and step is not None:
            try:
                step()
            except Exception as err:  # re-raised below, after the other ranks know
                error = err
        if self.dist.enabled:
            flag = torch.tensor([float(error is not None)], dtype=torch.float64)
            all_reduce_sum(flag, self.dist)
            if flag.item() > 0 and error is None:
                raise RuntimeError("rank 0 could not start the run (its error says why)")
        if error is not None:
            raise error

    def _fit(self) -> FitResult:
        cfg, t = self.cfg, self.cfg.train
        if self.dist.is_main:
            self.out.mkdir(parents=True, exist_ok=True)
            save_config(cfg, self.out / "config.yaml")
        barrier(self.dist)
        logger = MetricsLogger(self.out, enabled=self.dist.is_main, tensorboard=t.tensorboard)
        if self.dist.is_main:
            print(f"vidcls: training {cfg.model.name} on {len(self.train_set)} clips "
                  f"({self.num_classes} classes{', multi-label' if self.multi_label else ''}), "
                  f"{self.dist.world_size} process(es) on {self.device}, global batch "
                  f"{self.global_batch} (accumulate {self.accum}), lr {self.lr:.4g}, "
                  f"{t.epochs} epochs x {self.steps_per_epoch} steps", file=sys.stderr)
        stopped = None
        try:
            with StopFlag() as stop:
                while self.epoch < t.epochs:
                    start = time.perf_counter()
                    train_stats = self.train_epoch(logger, stop)
                    if stop.signum is not None:
                        stopped = stop.name
                        self.save()
                        if self.dist.is_main:
                            print(f"vidcls: stopped by {stopped} in epoch {self.epoch + 1} after "
                                  f"{self.batches_done} batches; checkpoint saved to "
                                  f"{self.ckpt_dir / 'last'} (continue with --resume)",
                                  file=sys.stderr)
                        break
                    self.epoch += 1
                    self.batches_done = 0
                    record = {"kind": "epoch", "epoch": self.epoch,
                              "train_loss": train_stats["train_loss"],
                              "train_top1": train_stats["train_top1"],
                              "lr": self.scheduler.get_last_lr()[0],
                              "epoch_time_s": time.perf_counter() - start}
                    is_best = False
                    val_bad: list[str] = []
                    if self.epoch % t.eval_every == 0 or self.epoch == t.epochs:
                        val = self.validate()
                        val_bad = val.pop("bad")
                        record.update({f"val_{k}": v for k, v in val.items()})
                        record["best_metric"] = key = self.best_metric
                        value = val.get(key)
                        better = (value is not None and (self.best is None or (
                            value < self.best if key == "loss" else value > self.best)))
                        if better:
                            self.best, is_best = value, True
                    bad = sorted(set(train_stats["bad"]) | set(val_bad))
                    if bad:
                        record["bad_files"] = len(bad)
                    self.history.append(record)
                    logger.log(record, self.global_step)
                    if self.dist.is_main:
                        self._print_epoch(record, train_stats["bad"], val_bad)
                    self.save({k: v for k, v in record.items() if k.startswith("val_")},
                              best=is_best)
        finally:
            logger.close()
        best_path = self.ckpt_dir / "best"
        return FitResult(output_dir=self.out, epochs_done=self.epoch, best_metric=self.best,
                         history=self.history, stopped_by=stopped,
                         last_checkpoint=self.ckpt_dir / "last",
                         best_checkpoint=best_path if best_path.exists() else None,
                         best_metric_name=self.best_metric)

    def _print_epoch(self, record: dict, train_bad: list[str], val_bad: list[str]) -> None:
        parts = [f"epoch {record['epoch']}/{self.cfg.train.epochs}",
                 f"loss {record['train_loss']:.4f}"]
        if record.get("train_top1") is not None:
            parts.append(f"train top1 {record['train_top1']:.1f}")
        if "val_mAP" in record:
            parts.append(f"val mAP {record['val_mAP']:.1f}")
        elif "val_top1" in record:
            parts += [f"val top1 {record['val_top1']:.1f}", f"top5 {record['val_top5']:.1f}",
                      f"mean class {record['val_mean_class_acc']:.1f}"]
        if record.get("val_skipped"):
            parts.append(f"skipped: {record['val_skipped']}")
        parts.append(f"{record['epoch_time_s']:.1f}s")
        print("vidcls: " + ", ".join(parts), file=sys.stderr, flush=True)
        _print_bad(train_bad, "unreadable training file(s) were replaced by other clips")
        _print_bad(val_bad, "unreadable validation file(s) were skipped (not scored)")


def _print_bad(bad: list[str], what: str, limit: int = 20) -> None:
    if not bad:
        return
    print(f"vidcls: {len(bad)} {what}:", file=sys.stderr)
    for line in bad[:limit]:
        print(f"  {line}", file=sys.stderr)
    if len(bad) > limit:
        print(f"  ... and {len(bad) - limit} more", file=sys.stderr)


def fit(cfg: Config, *, resume: str | Path | bool | None = None, overwrite: bool = False,
        progress: bool = True, datasets=None, model: nn.Module | None = None) -> FitResult:
    """Train as ``cfg`` says. Under ``torchrun`` every process calls this.

    ``resume``: True = continue ``OUTPUT_DIR/checkpoints/last`` if there is one, a path =
    continue that checkpoint. ``overwrite``: replace a run ``output_dir`` already holds (without
    it, and without ``resume``, such a directory is an error, ``RunDirError``).
    """
    try:
        trainer = Trainer(cfg, progress=progress, datasets=datasets, model=model)
        return trainer.fit(resume=resume, overwrite=overwrite)
    finally:
        cleanup_distributed()


__all__ = ["fit", "Trainer", "FitResult", "TrainingDiverged", "TrainingAborted", "MetricsLogger"]
