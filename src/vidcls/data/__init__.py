"""Video data: decoding, frame sampling, augmentation, dataset formats, synthetic data.

The pieces, in the order a clip goes through them (one concept per module):

- ``formats``: the 8 annotation formats -> ``VideoRecord`` lists (``build_records``,
  ``detect_format``, ``parse_dataset_spec``, ``FORMATS``).
- ``video``: ``VideoReader`` / ``FrameFolderReader`` (``open_video``): frame-exact random access
  to ``uint8 (T, H, W, 3)`` frames, seeking instead of decoding whole files.
- ``sampling``: which frame indices make a clip (TSN segments, dense clips, multi-clip tests).
- ``transforms``: one random crop/flip per clip on uint8 tensors; ``normalize`` (any device).
- ``dataset``: ``VideoClipDataset`` (records -> clips, with an optional cache of decoded
  videos) and ``collate_clips``.
- ``bad_files``: ``BadFileReport`` for files that fail to decode, and the scan that finds them
  (``check_records``, ``vidcls data check``).
- ``sources``: sequential frames from a file, frame folder, camera or URL (``open_source``).
- ``writer``: the one video encoder (``write_video`` for a clip, ``VideoWriter`` frame by frame).
- ``synthetic``: the built-in ``temporal`` / ``appearance`` datasets (``generate``).
"""
from .bad_files import BadFileReport, check_records, check_video
from .dataset import VideoClipDataset, collate_clips
from .formats import (FORMATS, VideoRecord, build_records, detect_format, parse_dataset_spec,
                      read_class_names)
from .sampling import dense_indices, sample_indices, segment_indices
from .sources import FrameSource, iter_frames, open_source
from .transforms import (TestTransform, TrainTransform, build_test_transform,
                         build_train_transform, normalize)
from .video import FrameFolderReader, VideoDecodeError, VideoMetadata, VideoReader, open_video
from .writer import VideoWriter, write_video

__all__ = [
    "FORMATS", "VideoRecord", "build_records", "detect_format", "parse_dataset_spec",
    "read_class_names",
    "VideoClipDataset", "collate_clips",
    "BadFileReport", "check_records", "check_video",
    "dense_indices", "sample_indices", "segment_indices",
    "TestTransform", "TrainTransform", "build_test_transform", "build_train_transform", "normalize",
    "FrameFolderReader", "VideoDecodeError", "VideoMetadata", "VideoReader", "open_video",
    "FrameSource", "iter_frames", "open_source",
    "VideoWriter", "write_video",
]
