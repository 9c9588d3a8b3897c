"""Video data: decoding, frame sampling, augmentation, dataset formats, synthetic data.

The pieces, in the order a clip goes through them:

- ``video``: ``VideoReader`` / ``FrameFolderReader`` (``open_video``): frame-exact random access
  to ``uint8 (T, H, W, 3)`` frames, seeking instead of decoding whole files.
- ``sampling``: which frame indices make a clip (TSN segments, dense clips, multi-clip tests),
  and ``average_views`` for multi-view scores.
- ``transforms``: one random crop/flip per clip on uint8 tensors; ``normalize`` (any device).
- ``datasets``: annotation formats -> ``VideoRecord`` lists (``build_records``), the
  ``VideoClipDataset``, ``collate_clips`` and ``BadFileReport`` for files that fail to decode.
- ``synthetic``: the built-in ``temporal`` / ``appearance`` datasets (``generate``).
- ``check``: scan a dataset for bad files (``check_records``).
"""
from .datasets import (FORMATS, BadFileReport, VideoClipDataset, VideoRecord, build_records,
                       collate_clips, detect_format, parse_dataset_spec)
from .sampling import average_views, dense_indices, sample_indices, segment_indices
from .transforms import (IMAGENET_MEAN, IMAGENET_STD, TIMESFORMER_MEAN, TIMESFORMER_STD,
                         TestTransform, TrainTransform, build_test_transform,
                         build_train_transform, normalize)
from .video import FrameFolderReader, VideoDecodeError, VideoMetadata, VideoReader, open_video

__all__ = [
    "FORMATS", "BadFileReport", "VideoClipDataset", "VideoRecord", "build_records",
    "collate_clips", "detect_format", "parse_dataset_spec",
    "average_views", "dense_indices", "sample_indices", "segment_indices",
    "IMAGENET_MEAN", "IMAGENET_STD", "TIMESFORMER_MEAN", "TIMESFORMER_STD", "TestTransform",
    "TrainTransform", "build_test_transform", "build_train_transform", "normalize",
    "FrameFolderReader", "VideoDecodeError", "VideoMetadata", "VideoReader", "open_video",
]
