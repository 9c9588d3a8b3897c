"""Model input and scoring: the one normaliser, view averaging, ``run_inference`` and its metrics,
against hand computations."""
import pytest
import torch
from torch import nn

from vidcls.data.transforms import normalize
from vidcls.models import IMAGENET

IMAGENET_MEAN, IMAGENET_STD = IMAGENET.mean, IMAGENET.std
from vidcls.engine.inference import (average_views, forward_views, run_inference,
                                     score_inference)


class MeanPixelHead(nn.Module):
    """``(B, T, 3, H, W)`` -> ``(B, K)``: a linear map of the per-channel means (deterministic)."""

    def __init__(self, num_classes: int = 4):
        super().__init__()
        torch.manual_seed(0)
        self.fc = nn.Linear(3, num_classes)

    def forward(self, x):
        return self.fc(x.mean(dim=(1, 3, 4)))  # (B, T, 3, H, W) -> (B, 3) -> (B, K)


def test_normalize_gives_the_same_for_uint8_and_float_clips():
    """The contract: uint8 in [0, 255] or float in [0, 1]; both are the same clip to the model."""
    clip = torch.randint(0, 256, (2, 4, 3, 8, 8), dtype=torch.uint8)
    as_float = clip.float() / 255
    before = as_float.clone()
    got_u8 = normalize(clip, IMAGENET_MEAN, IMAGENET_STD)
    got_float = normalize(as_float, IMAGENET_MEAN, IMAGENET_STD)
    assert torch.equal(got_u8, got_float)
    assert torch.equal(as_float, before)  # the input is never normalised in place
    mean, std = torch.tensor(IMAGENET_MEAN), torch.tensor(IMAGENET_STD)  # prebuilt tensors
    assert torch.equal(normalize(clip, mean, std), got_u8)
    for c in range(3):
        ref = (clip[:, :, c].float() / 255 - IMAGENET_MEAN[c]) / IMAGENET_STD[c]
        torch.testing.assert_close(got_u8[:, :, c], ref)


def test_average_views_matches_hand_computation():
    torch.manual_seed(0)
    logits = torch.randn(2, 6, 5)  # (B, V, K)
    prob = average_views(logits)
    for b in range(2):
        ref_prob = sum(torch.exp(logits[b, v]) / torch.exp(logits[b, v]).sum()
                       for v in range(6)) / 6
        torch.testing.assert_close(prob[b], ref_prob)
    torch.testing.assert_close(prob.sum(-1), torch.ones(2))
    with pytest.raises(ValueError, match=r"\(B, V, K\)"):
        average_views(logits[:, 0])


def test_forward_views_one_view_logits_several_views_probabilities():
    model = MeanPixelHead()
    x = torch.randn(3, 2, 2, 3, 5, 5)  # (B=3, V=2, T=2, 3, 5, 5)
    torch.testing.assert_close(forward_views(model, x[:, 0]), model(x[:, 0]))  # (B, K) logits
    got = forward_views(model, x)
    for b in range(3):
        ref = sum(model(x[b, v][None])[0].softmax(-1) for v in range(2)) / 2
        torch.testing.assert_close(got[b], ref)


def _batch(index, clip, label, bad=()):
    return {"clip": clip, "index": torch.tensor(index), "label": torch.tensor(label),
            "bad": list(bad)}


def test_run_inference_orders_drops_padding_and_scores():
    model = MeanPixelHead(num_classes=3)
    g = torch.Generator().manual_seed(0)
    clips = torch.randint(0, 256, (4, 2, 3, 4, 4), dtype=torch.uint8, generator=g)
    labels = [0, 2, 1, 2]
    # out of order, and video 0 twice (the sampler's wrap-around padding)
    loader = [_batch([2, 0], clips[[2, 0]], [labels[2], labels[0]], ["b.mp4: broken"]),
              _batch([3, 1], clips[[3, 1]], [labels[3], labels[1]]),
              _batch([0], clips[[0]], [labels[0]], ["b.mp4: broken"])]
    mean, std = torch.tensor([0.5] * 3), torch.tensor([0.25] * 3)
    result = run_inference(model, loader, device=torch.device("cpu"), mean=mean, std=std)
    assert result["index"].tolist() == [0, 1, 2, 3]
    assert result["labels"].tolist() == labels
    assert result["probs"] is False and result["bad"] == ["b.mp4: broken"]
    with torch.no_grad():
        want = model((clips.float() / 255 - 0.5) / 0.25)  # (4, K) logits
    torch.testing.assert_close(result["scores"], want)
    metrics = score_inference(result, 3)
    target = torch.tensor(labels)
    assert metrics["loss"] == pytest.approx(nn.functional.cross_entropy(want, target).item())
    assert metrics["top1"] == pytest.approx(100 * (want.argmax(1) == target).float().mean())


def test_score_inference_on_averaged_probabilities_uses_their_log():
    probs = torch.tensor([[0.7, 0.2, 0.1], [0.1, 0.3, 0.6]])
    labels = torch.tensor([0, 1])
    metrics = score_inference({"scores": probs, "labels": labels, "probs": True}, 3)
    assert metrics["loss"] == pytest.approx(-torch.tensor([0.7, 0.3]).log().mean().item())
    assert metrics["top1"] == pytest.approx(50.0)
