"""The figure helpers (:mod:`vidcls.viz`): the matplotlib bootstrap, figure saving, the PNG grid
with and without matplotlib, and the confusion-matrix figure from a tensor or an array."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from vidcls import viz


def test_pyplot_is_headless_and_figures_are_closed(tmp_path):
    plt = viz.require_pyplot()
    assert plt.get_backend().lower() == "agg"
    fig, ax = plt.subplots()
    ax.plot([0, 1], [1, 0])
    viz.save_figure(fig, tmp_path / "f.png")
    assert (tmp_path / "f.png").stat().st_size > 1000
    assert not plt.fignum_exists(fig.number)


def test_without_matplotlib_figures_say_false_and_the_grid_is_still_written(tmp_path,
                                                                            monkeypatch):
    monkeypatch.setattr(viz, "pyplot", lambda: None)
    with pytest.raises(ImportError, match="the report needs matplotlib.*pip install"):
        viz.require_pyplot("the report")
    assert viz.plot_confusion(np.eye(2, dtype=int), ["a", "b"], tmp_path / "cm.png") is False
    assert viz.plot_curves({"m": [{"epoch": 1, "train_loss": 1.0}]}, tmp_path / "c.png") is False
    frames = np.zeros((3, 8, 8, 3), dtype=np.uint8)
    viz.save_grid_png(tmp_path / "grid.png", frames, frames + 255)
    import av

    with av.open(str(tmp_path / "grid.png")) as c:
        image = next(c.decode(video=0)).to_ndarray(format="rgb24")
    assert image.shape == viz.grid_image(frames, frames).shape == (2 * 8 + 6, 3 * 10 + 2, 3)


def test_confusion_figure_takes_a_tensor_or_an_array(tmp_path):
    cm = torch.tensor([[3, 1], [0, 0]])  # the second class has no videos: a zero row
    assert viz.plot_confusion(cm, ["a", "b"], tmp_path / "t.png", title="t")
    assert viz.plot_confusion(cm.numpy(), ["a", "b"], tmp_path / "n.png", title="t")
    assert (tmp_path / "t.png").read_bytes() == (tmp_path / "n.png").read_bytes()


def test_upscale_nearest_repeats_pixels():
    img = np.arange(12, dtype=np.uint8).reshape(1, 2, 2, 3)
    big = viz.upscale_nearest(img, 3)
    assert big.shape == (1, 6, 6, 3) and (big[0, :3, :3] == img[0, 0, 0]).all()
    assert viz.upscale_nearest(img, 1) is img
