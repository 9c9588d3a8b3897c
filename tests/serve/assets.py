"""What the server tests build: tiny checkpoints with known predictions, their clips, and
servers on 127.0.0.1 (a free port each) in a background thread.

The "appearance" checkpoint is a unidirectional TSM-ResNet-18 (so it also streams) at 32
pixels whose head is a nearest-class-mean classifier over three synthetic appearance clips
(``vidcls.data.synthetic``: circle, square, triangle): the head's rows are those clips' mean
features, scaled so each clip's own class wins by a wide margin. The tests still take the
expected class from :class:`~vidcls.inference.predict.Predictor` /
:class:`~vidcls.inference.stream.StreamPredictor` on the same clip, never from the fixture.
"""
from __future__ import annotations

import av
import numpy as np
import torch

from vidcls.data.synthetic import class_names, render_video
from vidcls.data.writer import write_video
from vidcls.engine.checkpoint import save_model_checkpoint
from vidcls.inference.predict import Predictor
from vidcls.serve import ServeConfig, ServedModel, ServerThread, create_app
from helpers.models import calibrated_model, tiny_model

CLASSES = class_names("appearance", 3)  # ["circle", "square", "triangle"]
PREP = {"input_size": 32, "resize": 36, "num_frames": 8}
WEBCAM_CLASS = 1  # the fake camera shows the clip of this class


def appearance_frames(label: int, frames: int = 16) -> np.ndarray:
    """uint8 (T, 64, 64, 3): synthetic appearance clip 0 of class ``label``."""
    return render_video("appearance", label, 0, num_classes=len(CLASSES), num_frames=frames,
                        size=64)


def write_y4m(path, frames: np.ndarray, fps: int = 25):
    """A raw YUV 4:2:0 .y4m file: what Chromium's fake camera replays (in a loop)."""
    with av.open(str(path), "w", format="yuv4mpegpipe") as out:
        stream = out.add_stream("rawvideo", rate=fps)
        stream.height, stream.width = frames.shape[1:3]
        stream.pix_fmt = "yuv420p"
        for image in frames:
            for packet in stream.encode(av.VideoFrame.from_ndarray(image, format="rgb24")):
                out.mux(packet)
        for packet in stream.encode():
            out.mux(packet)
    return path


def fit_class_means(model, predictor: Predictor, videos: list, margin: float = 6.0) -> None:
    """Set ``model``'s head to nearest-class-mean over the clips' mean features: logit_c =
    s (f . mu_c - |mu_c|^2 / 2), so the closest prototype wins; ``s`` makes the smallest gap
    between two classes, at a prototype, ``margin`` logits."""
    feats = []
    for video in videos:
        _, x = predictor.load_clip(video)  # (T, 3, 32, 32): the frames the model sees
        with torch.no_grad():
            feats.append(predictor.model.forward_features(x[None])[0].mean(0))  # (C,)
    mu = torch.stack(feats)  # (K, C)
    gaps = torch.cdist(mu, mu) ** 2
    gaps.fill_diagonal_(float("inf"))
    scale = 2 * margin / gaps.min()
    with torch.no_grad():
        model.head.weight.copy_(scale * mu)
        model.head.bias.copy_(-scale * (mu * mu).sum(1) / 2)


def make_assets(root) -> dict:
    """Paths: ``videos`` (one mp4 per class), ``webcam_y4m``, ``tsm`` and ``vit``
    (checkpoint directories), ``not_video``."""
    videos = []
    for label in range(len(CLASSES)):
        path = root / f"{CLASSES[label]}.mp4"
        write_video(path, appearance_frames(label))
        videos.append(path)
    model = calibrated_model("tsm_resnet18", num_classes=len(CLASSES),
                             shift_mode="unidirectional")
    draft = save_model_checkpoint(root / "draft", model, classes=CLASSES, preprocessing=PREP)
    fit_class_means(model, Predictor(draft), videos)
    tsm = save_model_checkpoint(root / "tsm", model, classes=CLASSES, preprocessing=PREP)
    vit = save_model_checkpoint(root / "vit", tiny_model("timesformer_base", num_frames=4),
                                classes=["a", "b", "c"],
                                preprocessing={"input_size": 32, "resize": 36, "num_frames": 4})
    not_video = root / "notes.mp4"
    not_video.write_text("this is a text file, not a video\n" * 20)
    return {"videos": videos, "tsm": tsm, "vit": vit, "not_video": not_video,
            "webcam_y4m": write_y4m(root / "webcam.y4m", appearance_frames(WEBCAM_CLASS)),
            "webcam_frames": appearance_frames(WEBCAM_CLASS)}


def served_models(assets) -> list[ServedModel]:
    """Fresh ServedModels (tsm first: the default) on the CPU in fp32."""
    return [ServedModel.load("tsm", assets["tsm"], device="cpu", precision="fp32"),
            ServedModel.load("vit", assets["vit"], device="cpu", precision="fp32")]


def start_server(models, **config) -> ServerThread:
    """A started server on 127.0.0.1 (stop it, or use it in ``with``)."""
    return ServerThread(create_app(models, ServeConfig(**config))).start()
