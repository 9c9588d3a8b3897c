"""The names of the checkpoint formats ``vidcls convert --from`` reads, importable without torch.

The command line builds its ``--from`` choices from :data:`FORMAT_NAMES` while it builds the
parser, so ``vidcls --help`` and argument errors do not pay for importing torch (about 2 s).
``vidcls.convert.FORMATS`` pairs these names, in this order, with their converters: this tuple
is the one list of format names.
"""
from __future__ import annotations

__all__ = ["FORMAT_NAMES", "AUTO"]

#: the ``--from`` default: read the format from the file and its keys (:mod:`.detect`)
AUTO = "auto"

FORMAT_NAMES: tuple[str, ...] = (
    "tsm-official",
    "tsm-mmaction2",
    "tsm-paddle",
    "timesformer-official",
    "timesformer-hf",
    "timesformer-mmaction2",
    "torchvision-resnet",
    "timm-vit",
)
