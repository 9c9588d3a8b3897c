"""Training, evaluation and checkpoints.

    from vidcls.engine import load_config, fit, evaluate, load_model
    cfg = load_config("configs/demo_tsm.yaml", ["train.epochs=3"])
    result = fit(cfg)                      # also under torchrun
    metrics = evaluate(cfg, result.last_checkpoint)
    model, meta = load_model(result.last_checkpoint)

Modules: ``config`` (YAML schema), ``trainer`` (the loop), ``evaluate`` (``vidcls eval``),
``inference`` (scoring a model over a loader, view averaging), ``runtime`` (device, seeds,
precision, progress, stop signals), ``builders`` (config -> model and datasets),
``checkpoint`` (safetensors + JSON), ``optim`` (param groups, schedules, partial BN),
``metrics``, ``distributed`` (DDP helpers).
"""
from __future__ import annotations

import importlib

_EXPORTS = {
    "Config": "vidcls.engine.config", "load_config": "vidcls.engine.config",
    "ConfigError": "vidcls.engine.config",
    "fit": "vidcls.engine.trainer", "Trainer": "vidcls.engine.trainer",
    "TrainingDiverged": "vidcls.engine.trainer",
    "evaluate": "vidcls.engine.evaluate",
    "load_model": "vidcls.engine.checkpoint",
    "save_model_checkpoint": "vidcls.engine.checkpoint",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str):
    """Import lazily: ``import vidcls.engine.config`` must not pull in the whole engine."""
    if name in _EXPORTS:
        return getattr(importlib.import_module(_EXPORTS[name]), name)
    raise AttributeError(f"module 'vidcls.engine' has no attribute {name!r}")
