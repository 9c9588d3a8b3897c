"""The run directory of a training: one training at a time, and no silent overwrite.

Two trainings pointed at the same ``output_dir`` would interleave their config, metrics and
checkpoints (and trip over each other's ``checkpoints/last.tmp``). ``RunDirLock`` takes an
exclusive ``fcntl.flock`` on ``OUTPUT_DIR/.vidcls-train.lock`` for the whole run and writes who
holds it (pid, host, start time) into the file, so a second training stops at once and names
the first. The file is removed when the run ends; the kernel drops the lock when its process
ends, however it ends (even SIGKILL), so a file left behind by a killed run never blocks
anyone. Where ``fcntl`` is missing (Windows) there is no lock.

A directory that already holds a run (a checkpoint) is only trained into again when asked:
``--resume`` continues it (``check_resumable``: with the settings it was trained with),
``--overwrite`` replaces it (``clear_run`` removes what a training writes, nothing else).
"""
from __future__ import annotations

import json
import os
import shutil
import socket
import sys
import time
from pathlib import Path

from vidcls.data.bad_files import BadFileReport, NoUsableVideos
from vidcls.engine.checkpoint import read_meta, resolve_checkpoint_dir
from vidcls.engine.config import ConfigError

LOCK_FILE = ".vidcls-train.lock"
# What a training writes into its run directory (removed by ``clear_run``).
RUN_OUTPUTS = ("checkpoints", "metrics.jsonl", "tensorboard", "config.yaml", "bad_files.txt")


class RunDirError(ConfigError):
    """``output_dir`` cannot be used: another training holds it, or it holds a finished run."""


class RunDirLock:
    """Exclusive lock on a run directory, held from ``acquire`` to ``release``.

    >>> with RunDirLock("runs/exp1"):
    ...     train()
    """

    def __init__(self, run_dir: str | os.PathLike):
        self.run_dir = Path(run_dir)
        self.path = self.run_dir / LOCK_FILE
        self._fd: int | None = None

    def acquire(self) -> "RunDirLock":
        try:
            import fcntl
        except ImportError:  # no flock on this platform: run unlocked
            return self
        self.run_dir.mkdir(parents=True, exist_ok=True)
        while True:
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except OSError:  # BlockingIOError: held by another process
                holder = _describe_holder(os.read(fd, 4096))
                os.close(fd)
                raise RunDirError(f"output_dir {self.run_dir} is in use by another training "
                                  f"({holder}); wait for it to finish, stop it, or train into "
                                  f"another output_dir") from None
            if _same_file(fd, self.path):
                break
            os.close(fd)  # the holder removed the file as we opened it: lock the new one
        record = {"pid": os.getpid(), "host": socket.gethostname(),
                  "started": time.strftime("%Y-%m-%d %H:%M:%S")}
        os.ftruncate(fd, 0)
        os.pwrite(fd, (json.dumps(record) + "\n").encode(), 0)
        self._fd = fd
        return self

    def release(self) -> None:
        """Remove the lock file (still holding the lock) and drop the lock."""
        if self._fd is not None:
            import fcntl

            if _same_file(self._fd, self.path):
                self.path.unlink()
            fcntl.flock(self._fd, fcntl.LOCK_UN)
            os.close(self._fd)
            self._fd = None

    def __enter__(self) -> "RunDirLock":
        return self.acquire()

    def __exit__(self, *exc) -> None:
        self.release()


def _same_file(fd: int, path: Path) -> bool:
    """Is the open ``fd`` still the file at ``path`` (not removed or replaced meanwhile)?"""
    try:
        return os.path.samestat(os.fstat(fd), os.stat(path))
    except FileNotFoundError:
        return False


def _describe_holder(raw: bytes) -> str:
    try:
        rec = json.loads(raw.decode("utf-8"))
        return f"pid {rec['pid']} on {rec['host']}, started {rec['started']}"
    except (ValueError, KeyError, TypeError):  # written a moment ago, not yet readable
        return "another process; its details are not written yet"


def existing_checkpoint(run_dir: str | os.PathLike) -> Path | None:
    """The checkpoint a previous training left in ``run_dir`` (``last`` or ``best``), if any."""
    ckpts = Path(run_dir) / "checkpoints"
    for name in ("last", "best"):
        try:
            return resolve_checkpoint_dir(ckpts / name)
        except FileNotFoundError:
            continue
    return None


def refuse_existing_run(run_dir: str | os.PathLike) -> None:
    """Raise ``RunDirError`` when ``run_dir`` holds a run that a fresh start would overwrite."""
    found = existing_checkpoint(run_dir)
    if found is not None:
        raise RunDirError(f"output_dir {run_dir} already holds a training run ({found}); "
                          f"continue it with --resume, replace it with --overwrite, or train "
                          f"into another output_dir")


def clear_run(run_dir: str | os.PathLike) -> bool:
    """Remove what a previous training wrote into ``run_dir`` (``RUN_OUTPUTS``); other files
    stay. Returns whether anything was removed."""
    removed = False
    for name in RUN_OUTPUTS:
        p = Path(run_dir) / name
        if p.is_dir():
            shutil.rmtree(p)
            removed = True
        elif p.exists():
            p.unlink()
            removed = True
    return removed


def resume_path(ckpt_dir: Path, resume) -> Path | None:
    """The checkpoint to continue: ``resume=True`` -> ``ckpt_dir/last`` when there is one
    (else None: start fresh), a path -> that checkpoint (``FileNotFoundError`` if missing)."""
    if not resume:
        return None
    path = ckpt_dir / "last" if resume is True else Path(resume)
    try:
        resolve_checkpoint_dir(path)
    except FileNotFoundError:
        if resume is not True:
            raise
        return None
    return path


def start_fresh(run_dir: Path, *, overwrite: bool) -> None:
    """Refuse to train over a run ``run_dir`` holds, unless ``overwrite``; then remove what an
    earlier training left there (a stale ``metrics.jsonl`` would mix into the new one)."""
    if not overwrite:
        refuse_existing_run(run_dir)
    if clear_run(run_dir) and overwrite:
        print(f"vidcls: --overwrite: replacing the previous run in {run_dir}", file=sys.stderr)


# Settings a run may change when it is resumed: how long, how often to log / validate, where
# the data lives and how it is loaded, the test views. Everything else shapes the model, the
# optimizer state (SGD's momentum buffers do not fit AdamW) or the data the saved state was
# trained on, or would be silently overruled by the saved state (the lr schedule).
RESUMABLE_CHANGES = ("train.epochs", "train.log_every", "train.eval_every", "train.tensorboard",
                     "train.max_steps_per_epoch", "model.init", "model.pretrained", "data.root",
                     "data.train_ann", "data.val_ann", "data.test_ann", "data.format_options",
                     "data.workers", "data.cache_mb", "output_dir", "device", "eval.")


def check_resumable(path, saved: dict | None, current: dict, run_dir: Path) -> None:
    """Refuse to resume ``path`` with settings (config dicts) that differ from the saved
    run's, naming them and the ways out."""
    if not saved:
        return  # a checkpoint from before configs were stored
    # compare as stored: meta.json went through JSON (int mapping keys became strings)
    old, new = _flatten(saved), _flatten(json.loads(json.dumps(current, default=str)))
    # keys only one side has: a model option given or dropped, or a key added to the schema
    # since the run was saved (its default is what the run used: no change)
    model_keys = {k for k in set(old) ^ set(new) if k.startswith("model.")}
    changed = [k for k in sorted((set(old) & set(new)) | model_keys)
               if old.get(k) != new.get(k)
               and not any(k == c or (c.endswith(".") and k.startswith(c))
                           for c in RESUMABLE_CHANGES)]
    if changed:
        shown = ", ".join(f"{k} {old.get(k)!r} -> {new.get(k)!r}" for k in changed[:6])
        more = f" and {len(changed) - 6} more" if len(changed) > 6 else ""
        raise ConfigError(
            f"cannot resume {path}: these settings differ from the saved run "
            f"({Path(run_dir) / 'config.yaml'}): {shown}{more}; resume with the saved "
            f"settings, or start fresh with --overwrite or another output_dir")


def _flatten(config: dict) -> dict:
    """A config dict by key path: ``{"train": {"lr": 0.1}}`` -> ``{"train.lr": 0.1}`` (one
    level: ``data.format_options`` stays one value)."""
    out = {}
    for section, value in config.items():
        if isinstance(value, dict):
            out.update({f"{section}.{k}": v for k, v in value.items()})
        else:
            out[section] = value
    return out


def describe_last(ckpt_dir: Path) -> str | None:
    """``"runs/x/checkpoints/last, epoch 3; continue with --resume"`` (for messages), or
    ``None`` when there is no checkpoint yet."""
    try:
        found = resolve_checkpoint_dir(ckpt_dir / "last")
    except FileNotFoundError:
        return None
    return f"{found}, epoch {read_meta(found).get('epoch')}; continue with --resume"


def with_bad_file_report(err: NoUsableVideos, run_dir: Path) -> NoUsableVideos:
    """Write ``err``'s unreadable files to ``run_dir/bad_files.txt``; the error names it."""
    path = Path(run_dir) / "bad_files.txt"
    BadFileReport().update(err.bad).write(path)
    return err.with_report(path)


__all__ = ["RunDirLock", "RunDirError", "existing_checkpoint", "refuse_existing_run",
           "clear_run", "resume_path", "start_fresh", "check_resumable", "describe_last",
           "with_bad_file_report", "LOCK_FILE", "RUN_OUTPUTS", "RESUMABLE_CHANGES"]
