"""Source files for zoo entries, written locally in each source's exact key layout and file name.

``write_entry_source(entry, www, hub)`` builds the network the entry describes (random weights;
TimeSformers with one block instead of 12 so a test stays small -- every other shape, the
embeddings, frames, size and heads included, is the published one) and saves it the way its
source does, at the URL's path under ``www`` (or as a hub repository under ``hub``). The
writers are the independent ones of ``tests/reference`` and the converter tests, not
vidcls.convert.
"""
from __future__ import annotations

import functools
import json
import pickle
import re
from collections import OrderedDict
from pathlib import Path
from urllib.parse import urlsplit

import torch

from reference.mmaction2_tsm import to_mmaction2_tsm
from reference.mobilenetv2_online_demo import RefMobileNetV2
from reference.paddle_tsm import to_paddle
from vidcls.models import create_model

TIMESFORMER_TEST_DEPTH = 1


def source_model(entry):
    """The vidcls network behind ``entry`` (random weights), small where it can be; entries
    of the same architecture share one (the writers only read it), which keeps the zoo tests
    fast."""
    return _built(entry.architecture, tuple(sorted(entry.architecture_options.items())),
                  entry.num_classes, entry.num_frames)


@functools.lru_cache(maxsize=None)
def _built(architecture: str, options: tuple, num_classes: int, num_frames: int):
    options = dict(options)
    if architecture.startswith("timesformer"):
        options["depth"] = TIMESFORMER_TEST_DEPTH
    torch.manual_seed(0)
    return create_model(architecture, num_classes=num_classes, num_frames=num_frames,
                        **options).eval()


def url_path(www: Path, url: str) -> Path:
    path = www / urlsplit(url).path.lstrip("/")
    path.parent.mkdir(parents=True, exist_ok=True)
    return path


def _tsm_official_state(model) -> OrderedDict:
    """The TSM repo's ``TSN`` under DataParallel: ``module.base_model.`` + ``.net`` where its
    ``TemporalShift(net)`` wraps a layer (residual: the block's ``conv1``; in-place: the
    block), at the blocks the network shifts (ResNet-101: every second one); ``module.new_fc``."""
    from vidcls.ops.temporal_shift import TemporalShift

    shifted = {name.rsplit(".", 1)[0]: name.rsplit(".", 1)[1]
               for name, m in model.backbone.named_modules() if isinstance(m, TemporalShift)}
    out = OrderedDict()
    for key, value in model.state_dict().items():
        if key.startswith("head."):
            out["module.new_fc." + key[5:]] = value
            continue
        k = key[len("backbone."):]
        block = re.match(r"^(layer\d\.\d+)\.", k)
        if block and block[1] in shifted:
            if shifted[block[1]] == "shift_branch":  # residual: TemporalShift(conv1)
                k = re.sub(r"^(layer\d\.\d+)\.conv1\.", r"\1.conv1.net.", k)
            else:  # in-place: TemporalShift(block)
                k = re.sub(r"^(layer\d\.\d+)\.", r"\1.net.", k)
        out["module.base_model." + k] = value
    return out


def _tsm_official_mobilenetv2(entry, dst: Path) -> None:
    """The TSM repo's offline MobileNetV2 TSM (its ``archs/mobilenet_v2.py`` inside ``TSN``),
    from the independent reference of ``tests/reference``."""
    from torch import nn

    from reference.mobilenetv2_online_demo import RefInvertedResidual
    from reference.tsm_repo import RefTemporalShift, RefTSN, save_tsm_checkpoint

    torch.manual_seed(0)
    base = RefMobileNetV2(1000)
    for m in base.features:
        if isinstance(m, RefInvertedResidual) and len(m.conv) == 8 and m.use_res_connect:
            m.conv[0] = RefTemporalShift(m.conv[0], entry.num_frames, 8)
    base.classifier = nn.Dropout(0.5)
    save_tsm_checkpoint(dst, RefTSN(base, 1280, entry.num_classes, entry.num_frames))


def _mmaction2_tsm_state(model) -> OrderedDict:
    """mmaction2's ResNetTSM keys, with its ``TemporalShift(net)`` only at the blocks it shifts:
    like the TSM repo, ``make_temporal_shift`` shifts every second block of ResNet-101
    (``n_round = 2`` when layer3 has >= 23 blocks)."""
    from vidcls.ops.temporal_shift import TemporalShift

    shifted = {name.rsplit(".", 1)[0] for name, m in model.backbone.named_modules()
               if isinstance(m, TemporalShift)}
    out = OrderedDict()
    for key, value in to_mmaction2_tsm(model).items():
        block = re.match(r"^backbone\.(layer\d\.\d+)\.conv1\.conv\.net\.", key)
        if block and block[1] not in shifted:
            key = key.replace(".conv1.conv.net.", ".conv1.conv.")
        out[key] = value
    return out


def _timesformer_official_state(model) -> OrderedDict:
    return OrderedDict(("model." + k, v) for k, v in model.state_dict().items())


# vidcls TimeSformer names -> mmaction2 TimeSformer names (its mmcv bricks: MultiheadAttention's
# in_proj/out_proj; divided layers hold attentions.0 = temporal, attentions.1 = spatial)
_MMA_DIVIDED = [(r"^blocks\.(\d+)\.temporal_norm1\.", r"L\1.attentions.0.norm."),
                (r"^blocks\.(\d+)\.temporal_attn\.qkv\.", r"L\1.attentions.0.attn.in_proj_"),
                (r"^blocks\.(\d+)\.temporal_attn\.proj\.", r"L\1.attentions.0.attn.out_proj."),
                (r"^blocks\.(\d+)\.temporal_fc\.", r"L\1.attentions.0.temporal_fc."),
                (r"^blocks\.(\d+)\.norm1\.", r"L\1.attentions.1.norm."),
                (r"^blocks\.(\d+)\.attn\.qkv\.", r"L\1.attentions.1.attn.in_proj_"),
                (r"^blocks\.(\d+)\.attn\.proj\.", r"L\1.attentions.1.attn.out_proj."),
                (r"^blocks\.(\d+)\.norm2\.", r"L\1.ffns.0.norm.")]
_MMA_JOINT = [(r"^blocks\.(\d+)\.norm1\.", r"L\1.norms.0."),
              (r"^blocks\.(\d+)\.norm2\.", r"L\1.norms.1."),
              (r"^blocks\.(\d+)\.attn\.qkv\.", r"L\1.attentions.0.attn.in_proj_"),
              (r"^blocks\.(\d+)\.attn\.proj\.", r"L\1.attentions.0.attn.out_proj.")]
_MMA_SHARED = [(r"^patch_embed\.proj\.", "backbone.patch_embed.projection."),
               (r"^(cls_token|pos_embed|time_embed)$", r"backbone.\1"),
               (r"^norm\.", "backbone.norm."), (r"^head\.", "cls_head.fc_cls."),
               (r"^blocks\.(\d+)\.mlp\.fc1\.", r"L\1.ffns.0.layers.0.0."),
               (r"^blocks\.(\d+)\.mlp\.fc2\.", r"L\1.ffns.0.layers.1.")]


def _mmaction2_timesformer_state(model) -> OrderedDict:
    rules = _MMA_SHARED + (_MMA_DIVIDED if model.attention == "divided" else _MMA_JOINT)
    out = OrderedDict()
    for key, value in model.state_dict().items():
        for pattern, repl in rules:
            new, n = re.subn(pattern, repl, key)
            if n:
                out[new.replace("L", "backbone.transformer_layers.layers.", 1)
                    if new.startswith("L") else new] = value
                break
        else:
            raise AssertionError(f"no mmaction2 name for {key}")
    return out


def _frame_interval(entry) -> int | None:
    """The frame interval of a ``dense TxI`` entry (None for segment sampling)."""
    m = re.fullmatch(r"dense (\d+)x(\d+)", entry.sampling)
    return int(m[2]) if m else None


def write_entry_source(entry, www: Path, hub: Path) -> Path:
    """Write ``entry``'s source file (or hub repository) and return its path."""
    if entry.format == "timesformer-hf":
        return _write_hf_repo(entry, hub)
    dst = url_path(www, entry.url)
    if entry.format == "tsm-official" and entry.architecture == "tsm_mobilenetv2":
        if entry.architecture_options.get("shift_mode") == "unidirectional":
            torch.manual_seed(0)  # the online demo: a bare MobileNetV2 state dict
            torch.save(RefMobileNetV2(entry.num_classes, online=True).state_dict(), dst)
        else:
            _tsm_official_mobilenetv2(entry, dst)
        return dst
    model = source_model(entry)
    if entry.format == "tsm-official":
        torch.save({"epoch": 50, "arch": "resnet50", "state_dict": _tsm_official_state(model),
                    "best_prec1": 70.0}, dst)
    elif entry.format == "tsm-mmaction2":  # mmengine stores cfg.pretty_text in meta["cfg"]
        config = (f"model = dict(type='Recognizer2D', backbone=dict(type='ResNetTSM', "
                  f"depth={entry.architecture[-3:].lstrip('t')}, num_segments="
                  f"{entry.num_frames}, shift_div=8), cls_head=dict(type='TSMHead', "
                  f"num_classes={entry.num_classes}, num_segments={entry.num_frames}))")
        torch.save({"meta": {"cfg": config, "mmengine_version": "0.8.4"},
                    "state_dict": _mmaction2_tsm_state(model)}, dst)
    elif entry.format == "tsm-paddle":
        params = to_paddle(model)
        with open(dst, "wb") as f:  # what paddle.save(state_dict) writes
            pickle.dump({**params, "StructuredToParameterName@@":
                         {k: f"param_{i}" for i, k in enumerate(params)}}, f, protocol=4)
    elif entry.format == "timesformer-official":  # save_checkpoint: cfg.dump() text
        from reference.timesformer_repo import reference_config, save_reference_pyth

        dataset = "ssv2" if entry.dataset == "sthv2" else "kinetics"
        cfg = reference_config(DATA__NUM_FRAMES=entry.num_frames,
                               DATA__SAMPLING_RATE=_frame_interval(entry) or 8,
                               DATA__TRAIN_CROP_SIZE=entry.input_size,
                               DATA__TEST_CROP_SIZE=entry.input_size,
                               MODEL__NUM_CLASSES=entry.num_classes,
                               TRAIN__DATASET=dataset, TEST__DATASET=dataset)
        save_reference_pyth(dst, model, cfg)
    elif entry.format == "timesformer-mmaction2":
        from reference.mmaction2_timesformer import mma_timesformer_config

        attention = {"divided": "divided_space_time", "joint": "joint_space_time",
                     "space": "space_only"}[model.attention]
        config = mma_timesformer_config(num_frames=entry.num_frames, img_size=entry.input_size,
                                        attention_type=attention, num_classes=entry.num_classes,
                                        clip_len=entry.num_frames,
                                        frame_interval=_frame_interval(entry) or 32,
                                        test_scale=entry.input_size, crop_size=entry.input_size)
        torch.save({"meta": {"cfg": config}, "state_dict": _mmaction2_timesformer_state(model)},
                   dst)
    else:
        raise AssertionError(f"no writer for format {entry.format}")
    return dst


def _write_hf_repo(entry, hub: Path) -> Path:
    """A ``save_pretrained`` repository as the hub holds it (``config.json`` with id2label +
    the weight file the entry names)."""
    from transformers import TimesformerConfig, TimesformerForVideoClassification

    torch.manual_seed(0)
    size = entry.input_size
    config = TimesformerConfig(image_size=size, num_frames=entry.num_frames,
                               num_hidden_layers=TIMESFORMER_TEST_DEPTH,
                               attention_type="divided_space_time",
                               num_labels=entry.num_classes,
                               id2label={i: f"class {i}" for i in range(entry.num_classes)},
                               label2id={f"class {i}": i for i in range(entry.num_classes)})
    model = TimesformerForVideoClassification(config).eval()
    repo = hub / entry.hf_repo
    repo.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(repo)
    weights = [f for f in entry.hf_files if f != "config.json"]
    if weights == ["pytorch_model.bin"]:
        (repo / "model.safetensors").unlink()
        torch.save(model.state_dict(), repo / "pytorch_model.bin")
    assert json.loads((repo / "config.json").read_text())["num_frames"] == entry.num_frames
    return repo
