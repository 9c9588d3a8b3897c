"""What the TimeSformer reference (facebookresearch/TimeSformer) saves, written from its
definitions: ``timesformer/utils/checkpoint.py`` ``save_checkpoint`` (``{"epoch", "model_state",
"optimizer_state", "cfg": cfg.dump()}``), ``vit.py`` (``vit_base_patch16_224`` keeps the
VisionTransformer as ``self.model``: keys ``model.*``) and ``timesformer/config/defaults.py``
(the yacs keys and defaults the converter reads). yacs' ``CfgNode.dump()`` is
``yaml.safe_dump`` of the node as plain dicts.

For forks that save the ``CfgNode`` object itself, :func:`save_reference_pyth` can pickle a
stand-in of yacs' class (a ``dict`` subclass named ``yacs.config.CfgNode`` that keeps its
bookkeeping in ``__dict__``, as yacs does), registered under that module name only while
saving, so the file names a class the loader cannot import. The oracle layout for
:mod:`vidcls.convert.timesformer_official`."""
from __future__ import annotations

import copy
import sys
import types
from collections import OrderedDict

import torch
import yaml

#: the defaults.py keys the converter reads (values: the reference's defaults)
DEFAULTS = {
    "TRAIN": {"ENABLE": True, "DATASET": "kinetics", "BATCH_SIZE": 64},
    "TEST": {"ENABLE": True, "DATASET": "kinetics", "NUM_ENSEMBLE_VIEWS": 10,
             "NUM_SPATIAL_CROPS": 3},
    "MODEL": {"ARCH": "vit", "MODEL_NAME": "vit_base_patch16_224", "NUM_CLASSES": 400},
    "TIMESFORMER": {"ATTENTION_TYPE": "divided_space_time", "PRETRAINED_MODEL": ""},
    "DATA": {"PATH_TO_DATA_DIR": "", "NUM_FRAMES": 8, "SAMPLING_RATE": 8,
             "TRAIN_JITTER_SCALES": [256, 320], "TRAIN_CROP_SIZE": 224, "TEST_CROP_SIZE": 256,
             "MEAN": [0.45, 0.45, 0.45], "STD": [0.225, 0.225, 0.225],
             "INPUT_CHANNEL_NUM": [3], "TARGET_FPS": 30},
    "NUM_GPUS": 8, "OUTPUT_DIR": ".",
}


def reference_config(**settings) -> dict:
    """The defaults with ``settings`` given as ``SECTION__KEY=value``
    (``DATA__NUM_FRAMES=4``), as a config YAML of ``configs/`` overrides them."""
    cfg = copy.deepcopy(DEFAULTS)
    for dotted, value in settings.items():
        section, key = dotted.split("__")
        cfg[section][key] = value
    return cfg


class CfgNode(dict):
    """Stand-in for ``yacs.config.CfgNode``: a dict of nodes, bookkeeping in ``__dict__``."""

    def __init__(self, init_dict=None):
        init_dict = dict(init_dict or {})
        for key, value in init_dict.items():
            if isinstance(value, dict):
                init_dict[key] = CfgNode(value)
        super().__init__(init_dict)
        self.__dict__["__immutable__"] = False
        self.__dict__["__deprecated_keys__"] = set()
        self.__dict__["__renamed_keys__"] = {}
        self.__dict__["__new_allowed__"] = False


CfgNode.__module__, CfgNode.__qualname__ = "yacs.config", "CfgNode"


def save_reference_pyth(path, model, cfg: dict | None = None, *, pickled_cfg: bool = False,
                        epoch: int = 15):
    """Write ``model`` (a vidcls TimeSformer: the reference's names) as ``save_checkpoint``
    does: ``model_state`` under ``model.``, ``cfg`` as ``cfg.dump()`` text (or, with
    ``pickled_cfg``, the node itself); no ``cfg`` key when ``cfg`` is None."""
    state = OrderedDict(("model." + k, v) for k, v in model.state_dict().items())
    ckpt = {"epoch": epoch, "model_state": state, "optimizer_state": {}}
    if cfg is not None and not pickled_cfg:
        ckpt["cfg"] = yaml.safe_dump(cfg)
    if cfg is not None and pickled_cfg:
        yacs, config = types.ModuleType("yacs"), types.ModuleType("yacs.config")
        config.CfgNode, yacs.config = CfgNode, config
        saved = {name: sys.modules.get(name) for name in ("yacs", "yacs.config")}
        sys.modules.update({"yacs": yacs, "yacs.config": config})
        try:
            ckpt["cfg"] = CfgNode(cfg)
            torch.save(ckpt, path)
        finally:
            for name, module in saved.items():
                if module is None:
                    sys.modules.pop(name, None)
                else:
                    sys.modules[name] = module
        return path
    torch.save(ckpt, path)
    return path
