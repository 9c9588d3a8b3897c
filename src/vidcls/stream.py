"""Kept for users of ``vidcls.stream``: streaming lives in :mod:`vidcls.inference.stream`
(frame sources in :mod:`vidcls.data.sources`)."""
from vidcls.data.sources import FrameSource
from vidcls.inference.stream import (BACKENDS, AnnotatedWriter, StreamPredictor, StreamStats,
                                     iter_frames, open_source, overlay_text, stream_predictions)

__all__ = ["StreamPredictor", "StreamStats", "AnnotatedWriter", "FrameSource", "open_source",
           "iter_frames", "stream_predictions", "overlay_text", "BACKENDS"]
