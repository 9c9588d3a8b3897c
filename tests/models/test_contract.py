"""One contract over every registered model (timm's tests/test_models.py pattern): what the
rest of vidcls relies on, checked for each ``list_models()`` name."""
from __future__ import annotations

import pytest
import torch

from helpers.models import tiny_clip, tiny_model
from vidcls.engine.checkpoint import load_model, save_model_checkpoint
from vidcls.models import Preprocessing, create_model, get_builder, list_models


def test_registry_lists_every_family():
    names = list_models()
    assert names == sorted(names)
    for prefix in ("tsn_", "tsm_", "timesformer_"):
        assert any(n.startswith(prefix) for n in names), prefix
    with pytest.raises(ValueError, match="unknown model 'nope'; choose one of"):
        create_model("nope")


@pytest.mark.parametrize("name", list_models())
def test_builds_at_full_size_on_the_meta_device(name):
    with torch.device("meta"):
        model = create_model(name, num_classes=7)
    assert model.build_config["name"] == name
    assert model.build_config["num_classes"] == 7 == model.num_classes
    assert isinstance(model.preprocessing, Preprocessing)
    assert model.preprocessing.num_frames == model.num_frames


@pytest.mark.parametrize("name", list_models())
def test_model_contract(name, tmp_path):
    model = tiny_model(name, num_classes=3, num_frames=2)
    x = tiny_clip(frames=2)
    with torch.no_grad():
        logits = model(x)
        assert logits.shape == (1, 3)
        feats = model.forward_features(x)
        torch.testing.assert_close(model.forward_head(feats), logits)
        pooled = model.forward_head(feats, pre_logits=True)
        assert pooled.shape == (1, model.num_features)
        # another clip length and frame size than configured
        assert model(tiny_clip(frames=4, size=48, seed=1)).shape == (1, 3)

    # save -> load round trip rebuilds the same network with the same card
    loaded, meta = load_model(save_model_checkpoint(tmp_path / "ckpt", model))
    assert meta["model"] == model.build_config
    assert loaded.preprocessing == model.preprocessing
    with torch.no_grad():
        torch.testing.assert_close(loaded(x), logits, rtol=0, atol=0)

    # a new head for fine-tuning
    assert model.get_classifier().out_features == 3
    model.reset_classifier(5)
    assert model.get_classifier().out_features == 5 and model.num_classes == 5
    assert model.build_config["num_classes"] == 5
    with torch.no_grad():
        assert model(x).shape == (1, 5)
    again, _ = load_model(save_model_checkpoint(tmp_path / "ckpt5", model))
    assert again.num_classes == 5


@pytest.mark.parametrize("name", ["tsm_resnet18", "timesformer_base"])
def test_a_model_built_by_its_builder_can_be_saved(name, tmp_path):
    """Not only ``create_model``: calling the builder function directly records build_config."""
    options = {} if name.startswith("tsm") else dict(img_size=32, patch_size=8, embed_dim=32,
                                                     depth=1, num_heads=2)
    model = get_builder(name)(num_classes=2, num_frames=2, **options).eval()
    loaded, meta = load_model(save_model_checkpoint(tmp_path / "direct", model))
    assert meta["model"]["name"] == name
    x = tiny_clip(frames=2)
    with torch.no_grad():
        torch.testing.assert_close(loaded(x), model(x), rtol=0, atol=0)
