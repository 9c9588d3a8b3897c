"""``timesformer-hf``: a ``save_pretrained`` directory (and a bare weight file with its config)
computes what the HF transformers model computes."""
from __future__ import annotations

import pytest
import torch

from vidcls.convert import convert, timesformer_from_hf


def test_timesformer_hf_matches_transformers(tmp_path):
    from transformers import TimesformerConfig, TimesformerForVideoClassification

    torch.manual_seed(0)
    cfg = TimesformerConfig(image_size=32, patch_size=16, num_frames=4, hidden_size=32,
                            num_hidden_layers=2, num_attention_heads=2, intermediate_size=64,
                            num_labels=3, id2label={0: "run", 1: "jump", 2: "swim"},
                            label2id={"run": 0, "jump": 1, "swim": 2})
    hf = TimesformerForVideoClassification(cfg).eval()
    with torch.no_grad():
        for name, p in hf.named_parameters():
            if "temporal_dense" in name:
                p.normal_(0, 0.2)
    hf.save_pretrained(tmp_path / "hf")
    conv = convert(tmp_path / "hf", "timesformer-hf")
    assert conv.classes == ["run", "jump", "swim"]
    assert conv.preprocessing.mean == (0.5, 0.5, 0.5)
    x = torch.randn(2, 4, 3, 32, 32)
    with torch.no_grad():
        expected = hf(pixel_values=x).logits
        torch.testing.assert_close(conv.model(x), expected, atol=1e-4, rtol=1e-4)
    # a bare weight file with its config converts the same
    bare = convert(tmp_path / "hf" / "model.safetensors", "timesformer-hf",
                   config=tmp_path / "hf" / "config.json")
    with pytest.raises(ValueError, match="is a weight file; pass its HF config"):
        convert(tmp_path / "hf" / "model.safetensors")  # detected as HF, config still needed
    # a directory has its own config.json: another one would be silently ignored
    with pytest.raises(ValueError, match=r"config \(--config\) does not apply: .* its own "
                                         "config.json"):
        convert(tmp_path / "hf", config=tmp_path / "hf" / "config.json")
    with torch.no_grad():
        torch.testing.assert_close(bare.model(x), expected, atol=1e-4, rtol=1e-4)


def _hf_tiny(num_frames: int, image_size: int, seed: int = 0):
    from transformers import TimesformerConfig, TimesformerForVideoClassification

    torch.manual_seed(seed)
    cfg = TimesformerConfig(image_size=image_size, patch_size=16, num_frames=num_frames,
                            hidden_size=32, num_hidden_layers=2, num_attention_heads=2,
                            intermediate_size=64, num_labels=3)
    hf = TimesformerForVideoClassification(cfg).eval()
    with torch.no_grad():  # zero-initialised parts get values, so they count
        for name, p in hf.named_parameters():
            if "temporal_dense" in name or "time_embeddings" in name:
                p.normal_(0, 0.2)
    return hf


def test_timesformer_hf_other_length_and_size_match_hf(tmp_path):
    """At another clip length and size the converted model computes what HF computes for it:
    an HF model configured for 6 frames x 64 px (its layers reshape with the configured frame
    count) holding the 4 x 32 embeddings, which HF's embeddings module resizes with nearest.
    At another size alone the HF model itself runs the clip correctly."""
    from torch import nn

    hf = _hf_tiny(num_frames=4, image_size=32)
    hf.save_pretrained(tmp_path / "hf")
    big = _hf_tiny(num_frames=6, image_size=64, seed=1)
    weights = {k: v for k, v in hf.state_dict().items() if "_embeddings" not in k
               or "patch_embeddings" in k}
    missing, unexpected = big.load_state_dict(weights, strict=False)
    assert sorted(missing) == ["timesformer.embeddings.position_embeddings",
                               "timesformer.embeddings.time_embeddings"] and not unexpected
    emb = big.timesformer.embeddings
    emb.position_embeddings = nn.Parameter(hf.timesformer.embeddings.position_embeddings.clone())
    emb.time_embeddings = nn.Parameter(hf.timesformer.embeddings.time_embeddings.clone())

    conv = convert(tmp_path / "hf", "timesformer-hf")
    assert conv.model.build_config["pos_interpolation"] == "nearest"
    assert conv.model.build_config["time_interpolation"] == "nearest"
    resized = convert(tmp_path / "hf", "timesformer-hf", num_frames=6, img_size=64)
    assert resized.model.time_embed.shape[1] == 6 and resized.model.grid_size == (4, 4)
    x = torch.randn(2, 6, 3, 64, 64)
    with torch.no_grad():
        expected = big(pixel_values=x).logits
        smooth = timesformer_from_hf(hf, pos_interpolation="bicubic", time_interpolation="linear")
        assert (smooth(x) - expected).abs().max() > 1e-3  # the mode matters here
        torch.testing.assert_close(conv.model(x), expected, atol=1e-4, rtol=1e-4)
        torch.testing.assert_close(resized.model(x), expected, atol=1e-4, rtol=1e-4)
        x64 = torch.randn(2, 4, 3, 64, 64)
        torch.testing.assert_close(conv.model(x64), hf(pixel_values=x64).logits, atol=1e-4,
                                   rtol=1e-4)
