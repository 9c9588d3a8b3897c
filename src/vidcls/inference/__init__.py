"""Using a trained checkpoint: classify video files, stream live video, explain a prediction.

* :mod:`vidcls.inference.predict` -- :class:`Predictor` / :func:`predict`: top-k classes of
  video files (``vidcls predict``);
* :mod:`vidcls.inference.stream` -- :class:`StreamPredictor` / :func:`stream_predictions`:
  frame-by-frame online TSM on a file, frame folder, camera or URL (``vidcls stream``);
* :mod:`vidcls.inference.explain` -- attention rollout (TimeSformer) and Grad-CAM (TSN/TSM)
  heat maps (``vidcls explain``).

Every reader takes the input format from the checkpoint's model card,
:class:`vidcls.models.Preprocessing` (``read_preprocessing(meta, model)``): frames via
``.sampling_options()``, the test views via ``.eval_transform()``, never from defaults of its
own. The old paths ``vidcls.predict``, ``vidcls.stream`` and ``vidcls.explain`` re-export these
modules for users.
"""
from vidcls.inference.explain import Explanation, explain_clip, explain_video
from vidcls.inference.predict import Predictor, format_predictions, predict
from vidcls.inference.stream import StreamPredictor, StreamStats, stream_predictions

__all__ = ["Predictor", "predict", "format_predictions", "StreamPredictor", "StreamStats",
           "stream_predictions", "Explanation", "explain_clip", "explain_video"]
