"""Foreign checkpoints -> vidcls checkpoints (``vidcls convert SRC DST [--from FORMAT]``).

One module per source format, each with its literal rename table (as HF keeps a
``convert_<model>_to_pytorch.py`` beside each model):

=========================  ===========================================================
``tsm-official``           :mod:`.tsm_official` (TSM authors, incl. the online demo)
``tsm-mmaction2``          :mod:`.tsm_mmaction2`
``tsm-paddle``             :mod:`.tsm_paddle` (PaddleVideo, mirrored shift)
``timesformer-official``   :mod:`.timesformer_official` (facebookresearch ``.pyth``)
``timesformer-hf``         :mod:`.timesformer_hf` (HF transformers)
``timesformer-mmaction2``  :mod:`.timesformer_mmaction2`
``torchvision-resnet``     :mod:`.image_init` (ImageNet init for ``train --init``)
``timm-vit``               :mod:`.image_init`
=========================  ===========================================================

Each ``convert_<format>(src, **options)`` reads one published layout without running code from
it (:mod:`._io`), renames its keys to vidcls names, builds the matching registered model (so the
checkpoint records how to rebuild it, with the true builder name) and loads through the one
weight path, ``models._weights.load_filtered``: a key that does not fit is an error listing the
missing and unexpected keys, never a silently random layer. It returns a :class:`Converted`
(model, class names, the :class:`~vidcls.models.Preprocessing` the source was trained with);
:func:`convert_checkpoint` writes it as a checkpoint directory that predict / eval / stream /
train --init read. Shared helpers live in :mod:`._common`, the readers of the configs that
checkpoints store (yacs ``cfg``, mmaction2 ``meta``, PaddleVideo YAML) in :mod:`._configs`.

Which format a file is comes from the file itself: :mod:`.detect` reads its layout (container
and key names, never its tensors, without torch) and :func:`detect_format` names one of the six
video formats -- ``fmt="auto"``, the default of :func:`convert` and ``vidcls convert``. A file
given to another format is refused with the format it looks like; the image formats stay
explicit. A setting the file does not store and no option gives falls back to a default with a
:class:`ConversionWarning` naming the setting, the default and the option that sets it; an
option that does not apply to the file is an error.

The package imports lazily (PEP 562): the names below load :mod:`._api`, and with it torch and
every converter, on first use, so :mod:`.formats` (the ``--from`` names) and :mod:`.detect`
import without torch and ``vidcls --help`` stays fast.
"""
from __future__ import annotations

from vidcls.convert.detect import detect_format
from vidcls.convert.formats import FORMAT_NAMES

__all__ = [
    "read_state_dict", "hf_timesformer_state_dict", "timesformer_kwargs_from_hf_config",
    "timesformer_from_hf", "reference_timesformer_state_dict",
    "timm_vit_to_timesformer_state_dict", "timesformer_from_timm_vit",
    "load_timesformer_weights",
    "FORMAT_NAMES", "FORMATS", "Converted", "ConversionWarning", "convert", "convert_checkpoint",
    "detect_format", "load_torch_file", "read_paddle_params", "parse_tsm_filename",
    "mirror_shift_channels", "resolve_classes",
    "convert_tsm_official", "convert_tsm_mmaction2", "convert_tsm_paddle",
    "convert_timesformer_official", "convert_timesformer_hf", "convert_timesformer_mmaction2",
    "convert_torchvision_resnet", "convert_timm_vit",
]


def __getattr__(name: str):
    """Load the package's API on first use of one of its names (see the module docstring)."""
    if name not in __all__:
        raise AttributeError(f"module 'vidcls.convert' has no attribute {name!r}")
    from vidcls.convert import _api

    value = getattr(_api, name)
    globals()[name] = value  # later look-ups skip this function
    return value
