"""Reading weight files and the one filtered loader."""
import pytest
import torch

from helpers.models import tiny_model
from vidcls.models import create_model, load_pretrained
from vidcls.models._weights import (classifier_keys, key_report, load_filtered, read_state_dict,
                                    unwrap_state_dict)


@pytest.mark.parametrize("container", ["state_dict", "model_state", "model", "module", None])
def test_one_unwrap_rule_for_every_container(tmp_path, container):
    sd = {"a.weight": torch.ones(2), "b.bias": torch.zeros(1)}
    obj = sd if container is None else {container: sd, "epoch": 3}
    torch.save(obj, tmp_path / "w.pth")
    got = read_state_dict(tmp_path / "w.pth")
    assert got.keys() == sd.keys() and torch.equal(got["a.weight"], sd["a.weight"])


def test_unwrap_rejects_what_is_not_a_state_dict():
    with pytest.raises(ValueError, match="does not hold a state dict"):
        unwrap_state_dict([1, 2], "f.pth")
    with pytest.raises(ValueError, match=r"entries \['lr'\] of the state dict are not tensors"):
        unwrap_state_dict({"w": torch.ones(1), "lr": 0.1}, "f.pth")
    with pytest.raises(FileNotFoundError, match="does not exist"):
        read_state_dict("/nonexistent/w.pth")


class _Evil:
    def __reduce__(self):
        return (print, ("pwned",))


def test_foreign_pickles_never_run_code(tmp_path, capsys):
    path = tmp_path / "evil.pth"
    torch.save({"state_dict": {"w": torch.ones(1)}, "meta": _Evil()}, path)
    assert set(read_state_dict(path)) == {"w"}
    assert "pwned" not in capsys.readouterr().out


def test_load_filtered_reports_every_key_that_does_not_fit():
    model = tiny_model("timesformer_base", num_classes=3)
    sd = model.state_dict()
    sd["extra.weight"] = sd.pop("norm.weight")
    with pytest.raises(ValueError, match=r"does not fit model timesformer_base: missing keys "
                                         r"\['norm.weight'\], unexpected keys \['extra.weight'\]"):
        load_filtered(model, sd, source="x.pth")
    sd = model.state_dict()
    sd["head.weight"] = torch.zeros(9, 32)
    with pytest.raises(ValueError, match=r"shape mismatch at head.weight \(9, 32\) vs \(3, 32\)"):
        load_filtered(model, sd)
    assert "(+2 more)" in key_report([f"k{i}" for i in range(10)], [])


def test_pretrained_goes_through_the_family_filter(tmp_path):
    """A vidcls checkpoint with another class count starts a fine-tuning: the head stays fresh."""
    from vidcls.engine.checkpoint import save_model_checkpoint

    source = tiny_model("timesformer_base", num_classes=7, num_frames=4)
    path = save_model_checkpoint(tmp_path / "src", source)
    model = create_model("timesformer_base", num_classes=3, num_frames=8, pretrained=path,
                         img_size=32, patch_size=8, embed_dim=32, depth=2, num_heads=2)
    assert "pretrained" not in model.build_config
    ours, theirs = model.state_dict(), source.state_dict()
    assert torch.equal(ours["blocks.0.attn.qkv.weight"], theirs["blocks.0.attn.qkv.weight"])
    assert ours["time_embed"].shape[1] == 8  # resampled from 4 frames
    assert classifier_keys(model) == ["head.weight", "head.bias"]
    assert load_pretrained(model, path) == ["head.weight", "head.bias"]
