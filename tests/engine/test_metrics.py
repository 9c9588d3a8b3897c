"""Classification and multi-label metrics against hand-computed references."""
import pytest
import torch

from vidcls.engine.metrics import classification_metrics, confusion_matrix, multilabel_metrics


def test_metrics_hand_computed():
    scores = torch.tensor([[0.9, 0.05, 0.05],   # true 0 -> 0
                           [0.2, 0.5, 0.3],     # true 0 -> 1 (top2 has 0? no: 1,2)
                           [0.1, 0.8, 0.1],     # true 1 -> 1
                           [0.6, 0.1, 0.3],     # true 2 -> 0
                           [0.1, 0.2, 0.7]])    # true 2 -> 2
    labels = torch.tensor([0, 0, 1, 2, 2])
    m = classification_metrics(scores, labels, 3)
    assert m["top1"] == pytest.approx(60.0)
    assert m["top5"] == pytest.approx(100.0)  # k capped at 3 classes
    assert m["mean_class_acc"] == pytest.approx(100 * (0.5 + 1.0 + 0.5) / 3)
    assert m["confusion_matrix"].tolist() == [[1, 1, 0], [0, 1, 0], [1, 0, 1]]
    cm = confusion_matrix(torch.tensor([2, 2]), torch.tensor([0, 1]), 3)
    assert cm.tolist() == [[0, 0, 1], [0, 0, 1], [0, 0, 0]]
    # mAP: class 0 ranked [v0(pos), v1(neg), v2(pos)] -> AP = (1 + 2/3) / 2
    s = torch.tensor([[0.9, 0.1], [0.5, 0.8], [0.4, 0.2]])
    t = torch.tensor([[1.0, 0.0], [0.0, 1.0], [1.0, 0.0]])
    assert multilabel_metrics(s, t)["mAP"] == pytest.approx(100 * ((1 + 2 / 3) / 2 + 1) / 2)
