"""Frame-exact video decoding by index, on PyAV; frame folders behind the same interface.

Why not "decode everything, then index": TSN-style sampling wants 8 frames out of hundreds, and
decoding (plus RGB conversion) dominates data-loading time. ``VideoReader`` therefore

1. builds a frame index by *demuxing* the file (reading packets, no decoding; cheap): every
   packet's presentation timestamp (pts). Sorted pts = presentation order, so frame ``i`` is the
   frame whose pts is the ``i``-th smallest. The count comes from this index, not from the
   header (headers of avi/webm often lie or hold no count).
2. for each wanted frame, seeks to the keyframe at or before it and decodes forward, matching
   decoded frames by pts. Wanted frames are visited in order and one seek serves every wanted
   frame up to the next keyframe jump, so dense requests decode sequentially with no extra seek.
   Only the work those frames need is done: unwanted frames that nothing references are not
   decoded, reading stops at the last wanted frame's packet (then the decoder is drained
   rather than fed more frames to push the wanted ones out), and only wanted frames are
   converted to RGB, by one converter for the whole reader. ``benchmarks/bench_decode.py``
   compares this with decord and torchcodec.
3. falls back to a plain sequential decode (frames counted in output order) when timestamps are
   missing or inconsistent, or when a seek lands somewhere unexpected. Correctness first: the
   result always equals the ``i``-th frame of a full sequential decode.

``frames_decoded``, ``packets_read`` and ``seeks`` count the work done, so tests and benchmarks
can check that sparse sampling does not decode the whole file.

Rawframe folders (``img_00001.jpg``..., the TSM repo / mmaction2 layout) are read by
``FrameFolderReader`` with the same ``num_frames`` / ``get_frames`` interface; ``open_video``
picks the right reader for a path.

Failures (missing, empty, non-video, audio-only, truncated, undecodable) raise
``VideoDecodeError`` with a one-line ``reason`` that the dataset reports.

Frames come out as a player shows them: phone videos are usually stored landscape with a
rotation flag (the container's display matrix, or an older ``rotate`` stream tag of 90 / 180 /
270), and ``frame_to_rgb`` turns every decoded frame upright by it. ``VideoReader.rotation``
says by how much (clockwise degrees, as the ``rotate`` tag counts) and ``metadata`` reports
width and height after the rotation. Mirroring display matrices are not applied.

Reading a live stream in order (camera, URL) is ``sources.open_source``; encoding video is
``writer.write_video`` / ``writer.VideoWriter``.

Long because: ``VideoReader``'s index, seek and sequential-fallback paths are one algorithm
whose invariants (presentation order by pts, keyframe checks after a seek) read best side by
side; ``FrameFolderReader`` is its small twin behind the same interface, chosen by
``open_video``.
"""
from __future__ import annotations

import bisect
import itertools
import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator, Sequence

import numpy as np

VIDEO_EXTENSIONS = (".mp4", ".avi", ".webm", ".mkv", ".mov", ".m4v", ".mpg", ".mpeg", ".flv",
                    ".wmv", ".ogv", ".3gp", ".ts", ".gif")

# Rawframe file name templates used by the TSM repo, mmaction2 and the dataset distributions
# (Jester / Something-Something V1 ship "{:05d}.jpg"). Tried in this order when none is given.
FRAME_TEMPLATES = ("img_{:05d}.jpg", "{:05d}.jpg", "img_{:05d}.png", "{:05d}.png",
                   "{:06d}.jpg", "img_{:06d}.jpg", "frame_{:05d}.jpg", "frame{:06d}.jpg",
                   "image_{:05d}.jpg", "{:04d}.jpg")


class _SeekFailed(Exception):
    """The container refused a seek; the reader falls back to sequential decoding."""


class VideoDecodeError(ValueError):
    """A video (or frame folder) that cannot be read; ``reason`` is one short line."""

    def __init__(self, path: str | os.PathLike, reason: str):
        self.path = str(path)
        self.reason = reason
        super().__init__(f"{self.path}: {reason}")


@dataclass(frozen=True)
class VideoMetadata:
    num_frames: int
    fps: float | None
    duration: float | None  # seconds
    width: int
    height: int
    codec: str
    header_frames: int | None = None  # what the container header claimed (may be wrong or 0)
    rotation: int = 0  # clockwise degrees a player turns the stored frames (width/height: after)


# --------------------------------------------------------------------------- rotation
def tag_rotation(stream) -> int:
    """Clockwise degrees (0 / 90 / 180 / 270) of a stream's ``rotate`` tag (what FFmpeg before
    version 5 exported for phone videos, and what some containers still carry); 0 when absent
    or not a multiple of 90."""
    for key, value in (getattr(stream, "metadata", None) or {}).items():
        if key.lower() == "rotate":
            try:
                degrees = float(value)
            except (TypeError, ValueError):
                return 0
            return int(degrees) % 360 if degrees % 90 == 0 else 0
    return 0


def display_rotation(frame, default: int = 0) -> int:
    """Clockwise degrees to turn a decoded PyAV ``frame`` upright: its display matrix (PyAV's
    ``frame.rotation`` is counter-clockwise), else ``default`` (the stream's ``rotate`` tag).
    Angles that are not a multiple of 90 are not applied (FFmpeg's players skip them too)."""
    ccw = getattr(frame, "rotation", 0) or 0  # PyAV < 13 has no frame.rotation
    if ccw == 0:
        return default
    return int(-ccw) % 360 if ccw % 90 == 0 else 0


def upright(image: np.ndarray, rotation: int) -> np.ndarray:
    """``uint8 (H, W, 3)`` turned ``rotation`` degrees clockwise (contiguous)."""
    if rotation % 360 == 0:
        return image
    return np.ascontiguousarray(np.rot90(image, k=-(rotation // 90)))  # rot90 turns anti-clockwise


def frame_to_rgb(frame, default_rotation: int = 0) -> np.ndarray:
    """A decoded PyAV video frame as upright RGB ``uint8 (H, W, 3)``, as a player shows it."""
    return upright(frame.to_ndarray(format="rgb24"), display_rotation(frame, default_rotation))


def _check_file(path: Path) -> None:
    """Give the common failures a clear reason before FFmpeg gives a cryptic one."""
    if not path.exists():
        raise VideoDecodeError(path, "file not found")
    if path.is_dir():
        raise VideoDecodeError(path, "is a directory, not a video file")
    if path.stat().st_size == 0:
        raise VideoDecodeError(path, "empty file (0 bytes)")


class VideoReader:
    """Random access to the frames of one video file, by presentation index.

    ``get_frames(indices)`` returns ``uint8 (len(indices), H, W, 3)`` RGB, exactly the frames a
    full sequential decode yields at those positions. Indices may repeat and come in any order.
    ``seek_threshold``: when the next wanted frame's keyframe is at most this many frames past the
    previous wanted frame, decode forward instead of seeking (a seek flushes the decoder).
    ``skip_nonref``: skip decoding unwanted frames that no other frame references (see
    ``_decode_from``); the output is identical, only faster. ``threads``: decoder (and RGB
    conversion) threads, 0 = FFmpeg's choice (frame threads, one more than the cores).
    A file that ends before its header says it should (an interrupted download or recording)
    raises ``VideoDecodeError`` unless ``allow_truncated=True``; then the readable frames are
    used and ``truncated`` holds the reason.
    """

    def __init__(self, path: str | os.PathLike, *, threads: int = 0,
                 seek_threshold: int = 8, allow_truncated: bool = False,
                 skip_nonref: bool = True):
        import av  # noqa: F401  (fail here, not mid-decode, when PyAV is missing)

        self.path = Path(path)
        self.seek_threshold = seek_threshold
        self.skip_nonref = skip_nonref
        self.frames_decoded = 0  # decoded frames, over all get_frames calls
        self.packets_read = 0  # packets handed to the decoder (skipped ones included)
        self.seeks = 0
        self._threads = threads
        self._reformatter = None  # one RGB converter for every frame (see _rgb)
        self._sws_threads = {"threads": threads}
        self._container = None
        self._rotation: int | None = None  # clockwise degrees, known after the first decode
        _check_file(self.path)
        try:
            self._open()
            self._build_index()
            self.truncated = self._truncation()
            if self.truncated and not allow_truncated:
                raise VideoDecodeError(self.path, self.truncated)
        except BaseException:
            self.close()
            raise

    # ----------------------------------------------------------------- setup
    def _open(self) -> None:
        import av

        self.close()
        try:
            self._container = av.open(str(self.path), "r")
        except (av.error.FFmpegError, UnicodeDecodeError, ValueError) as e:
            raise VideoDecodeError(self.path, f"not a readable video ({_short(e)})") from None
        self._stream = self._pick_stream()
        self._stream.thread_type = "AUTO"  # frame + slice threads: several x faster on HD
        self._stream.thread_count = self._threads
        self._tag_rotation = tag_rotation(self._stream)

    def _pick_stream(self):
        import av

        streams = [s for s in self._container.streams.video
                   if not (s.disposition & av.stream.Disposition.attached_pic)]
        if not streams:
            kinds = sorted({s.type for s in self._container.streams}) or ["no streams"]
            raise VideoDecodeError(self.path, f"no video stream (contains: {', '.join(kinds)})")
        return streams[0]

    def _build_index(self) -> None:
        """Demux every packet of the stream (no decoding) and index frames by pts."""
        import av

        pts_list: list[int] = []
        key_pts: list[int] = []
        self._demux_error: str | None = None
        timestamps_ok = True
        n_packets = 0
        try:
            for packet in self._container.demux(self._stream):
                if packet.size == 0 or packet.is_discard:
                    continue  # flush packet / packets an edit list cuts away
                n_packets += 1
                pts = packet.pts if packet.pts is not None else packet.dts
                if pts is None:
                    timestamps_ok = False
                    continue
                pts_list.append(pts)
                if packet.is_keyframe:
                    key_pts.append(pts)
        except av.error.FFmpegError as e:
            self._demux_error = _short(e)  # truncated / damaged: keep what was readable
        if n_packets == 0:
            raise VideoDecodeError(self.path, "no video frames in file"
                                   + (f" ({self._demux_error})" if self._demux_error else ""))

        pts_sorted = sorted(pts_list)
        if (not timestamps_ok or len(set(pts_sorted)) != len(pts_sorted) or not key_pts
                or key_pts[0] > pts_sorted[0]):
            # Missing/duplicate pts, or no keyframe before the first frame: position by count.
            self._sequential_only = True
        else:
            self._sequential_only = False
        self._num_frames = n_packets
        self._pts = pts_sorted  # index -> pts
        self._pts_to_index = {p: i for i, p in enumerate(pts_sorted)}
        order = sorted(range(len(key_pts)), key=key_pts.__getitem__)
        self._key_pts = [key_pts[j] for j in order]
        # index of each keyframe in presentation order, for "how far is the next keyframe"
        self._key_index = [self._pts_to_index.get(p, 0) for p in self._key_pts]
        self._key_index_set = set(self._key_index)

    def _truncation(self) -> str | None:
        """Why the file looks cut short, or ``None``. Compares what demuxing found with the
        header's frame count and duration (with slack: headers are often a little off)."""
        n = self._num_frames
        if self._demux_error:
            return f"truncated or damaged: reading stopped after {n} frames ({self._demux_error})"
        header = self._stream.frames or 0
        if header > n + max(2, 0.05 * header):
            return f"truncated: header says {header} frames, file holds {n}"
        fps, duration = self._timing()
        expected = None
        if self._stream.duration and self._stream.time_base:
            expected = float(self._stream.duration * self._stream.time_base)
        elif self._container.duration and len(self._container.streams) == 1:
            expected = self._container.duration / 1_000_000  # AV_TIME_BASE units
        if expected and duration and fps and expected > 1.1 * duration + 2 / fps:
            return (f"truncated: header says {expected:.2f} s, frames cover "
                    f"{duration:.2f} s ({n} frames)")
        return None

    # ------------------------------------------------------------- metadata
    @property
    def num_frames(self) -> int:
        return self._num_frames

    def __len__(self) -> int:
        return self._num_frames

    @property
    def rotation(self) -> int:
        """Clockwise degrees (0 / 90 / 180 / 270) a player turns this video's frames, as
        ``get_frames`` does. Read from the first decoded frame (its display matrix) or the
        stream's ``rotate`` tag; decodes frame 0 when nothing was decoded yet."""
        if self._rotation is None:
            try:
                self.get_frames([0])
            except VideoDecodeError:
                self._rotation = self._tag_rotation
        return self._rotation

    def _rgb(self, frame) -> np.ndarray:
        """A decoded frame as upright RGB; remembers the rotation for ``rotation``.

        One converter (swscale context) serves every frame of the reader: PyAV's
        ``frame.to_ndarray(format=...)`` builds a new context, and a new thread pool, per frame,
        which costs more than the conversion itself (0.65 vs 0.1 ms for 640x480). The result
        is the same image."""
        rotation = display_rotation(frame, self._tag_rotation)
        if self._rotation is None:
            self._rotation = rotation
        if self._reformatter is None:
            from av.video.reformatter import VideoReformatter

            self._reformatter = VideoReformatter()
        try:
            rgb = self._reformatter.reformat(frame, format="rgb24", **self._sws_threads)
        except TypeError:  # PyAV < 13: no threads argument
            self._sws_threads = {}
            rgb = self._reformatter.reformat(frame, format="rgb24")
        return upright(rgb.to_ndarray(), rotation)

    def _timing(self) -> tuple[float | None, float | None]:
        """``(fps, duration in seconds)`` from the frame index (the header's rate otherwise)."""
        s = self._stream
        tb = float(s.time_base) if s.time_base else None
        duration = None
        fps = None
        if tb and not self._sequential_only and len(self._pts) > 1:
            span = (self._pts[-1] - self._pts[0]) * tb
            fps = (len(self._pts) - 1) / span if span > 0 else None
            duration = span + (span / (len(self._pts) - 1))  # add one frame's display time
        if fps is None and s.average_rate:
            fps = float(s.average_rate)
        if duration is None and fps:
            duration = self._num_frames / fps
        return fps, duration

    @property
    def metadata(self) -> VideoMetadata:
        """Frame count, rate, duration, codec, and the size as displayed (after ``rotation``)."""
        s = self._stream
        fps, duration = self._timing()
        rotation = self.rotation
        width, height = s.codec_context.width, s.codec_context.height
        if rotation in (90, 270):
            width, height = height, width
        return VideoMetadata(num_frames=self._num_frames, fps=fps, duration=duration,
                             width=width, height=height, codec=s.codec_context.name,
                             header_frames=s.frames or None, rotation=rotation)

    # ------------------------------------------------------------- decoding
    def _decode_from(self, seek_ts: int | None, skip_pts: set | None = None,
                     stop_pts: set | None = None) -> Iterator:
        """Yield decoded frames from a seek to ``seek_ts`` (``None``: from the start).

        With ``skip_pts`` (the pts of the frames the caller wants), packets of other frames are
        decoded with ``skip_frame="NONREF"``: frames no other frame references (most B-frames)
        are then not decoded at all, since nothing needs them. Reference frames still are.
        With ``stop_pts``, no packet is read past the last of those frames' packets: the
        decoder is drained there instead (an empty packet), which hands out the frames it
        holds back for reordering (B-frames: 2-4) or has in flight on its frame threads (one
        per thread) without decoding that many more frames first. Every frame a wanted frame
        references precedes it in decode order, so the wanted frames are all complete then.
        Raises ``_SeekFailed`` when the container cannot seek to ``seek_ts``; from the start,
        a container that cannot seek (raw elementary streams) is reopened instead. Every
        decode starts with a seek, which also resets a drained decoder.
        """
        if seek_ts is None:
            try:
                self._container.seek(0)
            except Exception:
                self._open()
        else:
            try:
                self._container.seek(seek_ts, stream=self._stream, backward=True,
                                     any_frame=False)
            except Exception as e:
                raise _SeekFailed(str(e)) from None
        self.seeks += 1
        stop = set(stop_pts) if stop_pts else None  # packets still to come before the drain
        # The decoder setting is shared by every iterator of this reader (an abandoned one is
        # finalised at some later point), so set it explicitly for every packet that needs it.
        cc = self._stream.codec_context
        cc.skip_frame = "DEFAULT"
        for packet in self._container.demux(self._stream):
            if skip_pts is not None:
                skip = packet.size > 0 and packet.pts is not None and packet.pts not in skip_pts
                mode = "NONREF" if skip else "DEFAULT"
                if cc.skip_frame != mode:
                    cc.skip_frame = mode
            self.packets_read += packet.size > 0
            for frame in packet.decode():  # the final empty packet flushes the decoder
                self.frames_decoded += 1
                yield frame
            if stop is not None:
                stop.discard(packet.pts if packet.pts is not None else packet.dts)  # as indexed
                if not stop:
                    for frame in cc.decode(None):  # drain: what the decoder still holds
                        self.frames_decoded += 1
                        yield frame
                    return

    def _index_of(self, frame) -> int | None:
        pts = frame.pts if frame.pts is not None else frame.dts
        return self._pts_to_index.get(pts) if pts is not None else None

    def get_frames(self, indices: Sequence[int]) -> np.ndarray:
        """Frames at ``indices`` as ``uint8 (len(indices), H, W, 3)`` RGB."""
        idx = [int(i) for i in indices]
        if not idx:
            raise ValueError("get_frames needs at least one index")
        bad = [i for i in idx if not 0 <= i < self._num_frames]
        if bad:
            raise IndexError(f"frame index {bad[0]} out of range for {self.path.name} "
                             f"with {self._num_frames} frames (valid: 0..{self._num_frames - 1})")
        wanted = sorted(set(idx))
        try:
            got = None
            if not self._sequential_only:
                try:
                    got = self._get_by_seeking(wanted)
                except _SeekFailed:
                    got = None
                if got is None:
                    self._sequential_only = True  # don't pay for failing seeks again
            if got is None:
                got = self._get_sequential(wanted)
        except VideoDecodeError:
            raise
        except Exception as e:  # FFmpeg errors mid-stream: corrupt data
            raise VideoDecodeError(self.path, f"decoding failed ({_short(e)})") from None
        return np.stack([got[i] for i in idx])  # (T, H, W, 3)

    def _keyframe_for(self, index: int) -> int:
        """Position in the keyframe list of the last keyframe at or before frame ``index``."""
        return max(bisect.bisect_right(self._key_pts, self._pts[index]) - 1, 0)

    def _start_near(self, k: int, target: int, skip_pts: set | None = None,
                    stop_pts: set | None = None) -> Iterator | None:
        """Decode iterator starting at keyframe ``k`` (or an earlier one) at or before ``target``.

        Seeks to the keyframe's pts. Demuxers that index by dts, or only approximately (MPEG
        program streams), can land past the target; then retry from up to two keyframes earlier.
        The first keyframe is reached by rewinding to the start, which always works.
        ``skip_pts`` / ``stop_pts``: see ``_decode_from``.
        """
        for kk in range(k, max(k - 3, -1), -1):
            frames = self._decode_from(self._key_pts[kk] if kk > 0 else None, skip_pts,
                                       stop_pts)
            first = next(frames, None)
            if first is None:
                continue  # landed at the end of the file
            i = self._index_of(first)
            if i is None:
                return None  # frame without a usable timestamp
            if i <= target:
                return itertools.chain([first], frames)
        return None

    def _plan_runs(self, wanted: list[int]) -> list[list[int]]:
        """Split the sorted ``wanted`` indices into runs that one seek serves: the next wanted
        frame joins the current run when its keyframe is at most ``seek_threshold`` frames past
        the run's last frame (decoding forward is then cheaper than a seek, which flushes the
        decoder); otherwise it starts a run at its own keyframe."""
        runs: list[list[int]] = []
        for target in wanted:
            key = self._key_index[self._keyframe_for(target)]
            if runs and key <= runs[-1][-1] + self.seek_threshold:
                runs[-1].append(target)
            else:
                runs.append([target])
        return runs

    def _get_by_seeking(self, wanted: list[int]) -> dict[int, np.ndarray] | None:
        """Seek + decode forward; ``None`` when the stream does not behave (then go sequential).

        One seek per run (``_plan_runs``), reading packets up to the run's last wanted one.
        Besides the overshoot check in ``_start_near``, the first decoded *key* frame after a seek
        must carry a keyframe's pts: some demuxers (MPEG-1 program streams) shift pts after a
        seek, and a frame-exact reader must not trust them then.
        """
        got: dict[int, np.ndarray] = {}
        wanted_set = set(wanted)
        skip_pts = {self._pts[i] for i in wanted} if self.skip_nonref else None
        for run in self._plan_runs(wanted):
            need = {i for i in run if i not in got}
            if not need:
                continue
            start = min(need)
            frames = self._start_near(self._keyframe_for(start), start, skip_pts,
                                      {self._pts[i] for i in need})
            if frames is None:
                return None
            check_key = True
            for frame in frames:
                i = self._index_of(frame)
                if i is None:
                    return None
                if check_key and frame.key_frame:
                    if i not in self._key_index_set:
                        return None  # timestamps shifted after the seek
                    check_key = False
                if i in wanted_set and i not in got:  # a later run's frame is kept too
                    got[i] = self._rgb(frame)
                need.discard(i)
                if not need or i >= run[-1]:
                    break  # frames come out in presentation order: nothing wanted is left
            if need:
                return None
        return got

    def _get_sequential(self, wanted: list[int]) -> dict[int, np.ndarray]:
        """Decode from the start, numbering frames in output order."""
        got: dict[int, np.ndarray] = {}
        remaining = set(wanted)
        last = wanted[-1]
        n = -1
        for n, frame in enumerate(self._decode_from(None)):
            if n in remaining:
                got[n] = self._rgb(frame)
            if n >= last:
                break
        if len(got) < len(remaining):
            missing = min(remaining - set(got))
            raise VideoDecodeError(
                self.path, f"frame {missing} could not be decoded (decoder produced {n + 1} "
                           f"of {self._num_frames} frames; file truncated or corrupt)")
        return got

    def decode_all(self) -> np.ndarray:
        """Every frame, sequentially: ``uint8 (N, H, W, 3)``. The reference for exactness tests."""
        try:
            frames = [self._rgb(f) for f in self._decode_from(None)]
        except Exception as e:
            raise VideoDecodeError(self.path, f"decoding failed ({_short(e)})") from None
        if not frames:
            raise VideoDecodeError(self.path, "no decodable frames")
        return np.stack(frames)

    # ------------------------------------------------------------- lifetime
    def close(self) -> None:
        c = getattr(self, "_container", None)
        if c is not None:
            c.close()
            self._container = None

    def __enter__(self) -> "VideoReader":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def __del__(self):
        try:
            self.close()
        except Exception:
            pass


def _short(e: BaseException) -> str:
    """One line of an exception, without FFmpeg's path repetition."""
    msg = str(e).splitlines()[0] if str(e) else type(e).__name__
    msg = re.sub(r"^\[Errno -?\d+\] ", "", msg)
    msg = re.sub(r": '[^']*'$", "", msg)  # FFmpeg appends the file name we already report
    return msg[:200]


# --------------------------------------------------------------------------- frame folders
def detect_frame_template(directory: str | os.PathLike, start_index: int | None = None
                          ) -> tuple[str, int]:
    """Find which known template (and start index 0 or 1) a rawframe folder uses."""
    d = Path(directory)
    starts = (start_index,) if start_index is not None else (0, 1)  # 0 exists: 0-based
    for tmpl in FRAME_TEMPLATES:
        for s in starts:
            if (d / tmpl.format(s)).is_file():
                return tmpl, s
    raise VideoDecodeError(d, "no frame images matching a known template "
                              f"(tried {', '.join(FRAME_TEMPLATES[:4])}, ...; pass filename_tmpl)")


class FrameFolderReader:
    """A folder of extracted frames (``img_00001.jpg``...) with the ``VideoReader`` interface.

    ``filename_tmpl`` is a ``str.format`` template with one integer field; ``start_index`` is the
    number of the first frame (1 in the TSM repo and mmaction2). ``num_frames`` comes from the
    list file when known, otherwise it is counted from the files matching the template.
    """

    def __init__(self, directory: str | os.PathLike, *, filename_tmpl: str | None = None,
                 start_index: int | None = None, num_frames: int | None = None):
        self.path = Path(directory)
        self.frames_decoded = 0
        self.seeks = 0
        if not self.path.exists():
            raise VideoDecodeError(self.path, "frame folder not found")
        if not self.path.is_dir():
            raise VideoDecodeError(self.path, "not a directory of frames")
        if filename_tmpl is None:
            filename_tmpl, start_index = detect_frame_template(self.path, start_index)
        elif start_index is None:
            start_index = 1 if (self.path / filename_tmpl.format(1)).is_file() and not (
                self.path / filename_tmpl.format(0)).is_file() else 0
        self.filename_tmpl = filename_tmpl
        self.start_index = start_index
        if num_frames is None:
            num_frames = self._count()
        if num_frames <= 0:
            raise VideoDecodeError(self.path, f"no frames matching {filename_tmpl!r}")
        self._num_frames = int(num_frames)

    def _count(self) -> int:
        """Number of files matching the template (the folder may hold other files too)."""
        prefix, _, rest = self.filename_tmpl.partition("{")
        spec, _, suffix = rest.partition("}")
        pattern = re.compile(re.escape(prefix) + r"(\d+)" + re.escape(suffix) + "$")
        return sum(1 for name in os.listdir(self.path) if pattern.match(name))

    @property
    def num_frames(self) -> int:
        return self._num_frames

    def __len__(self) -> int:
        return self._num_frames

    def frame_path(self, index: int) -> Path:
        return self.path / self.filename_tmpl.format(index + self.start_index)

    @property
    def rotation(self) -> int:
        """Frame images are stored upright (0), for the ``VideoReader`` interface."""
        return 0

    @property
    def metadata(self) -> VideoMetadata:
        from PIL import Image

        with Image.open(self.frame_path(0)) as im:
            w, h = im.size
            fmt = (im.format or "image").lower()
        return VideoMetadata(num_frames=self._num_frames, fps=None, duration=None, width=w,
                             height=h, codec=fmt, header_frames=None)

    def get_frames(self, indices: Sequence[int]) -> np.ndarray:
        from PIL import Image, UnidentifiedImageError

        idx = [int(i) for i in indices]
        if not idx:
            raise ValueError("get_frames needs at least one index")
        cache: dict[int, np.ndarray] = {}
        for i in idx:
            if not 0 <= i < self._num_frames:
                raise IndexError(f"frame index {i} out of range for {self.path} with "
                                 f"{self._num_frames} frames")
            if i in cache:
                continue
            p = self.frame_path(i)
            try:
                with Image.open(p) as im:
                    cache[i] = np.asarray(im.convert("RGB"))
            except FileNotFoundError:
                raise VideoDecodeError(p, "frame image missing") from None
            except (UnidentifiedImageError, OSError) as e:
                raise VideoDecodeError(p, f"unreadable frame image ({_short(e)})") from None
            self.frames_decoded += 1
        try:
            return np.stack([cache[i] for i in idx])  # (T, H, W, 3)
        except ValueError:
            raise VideoDecodeError(self.path, "frame images have different sizes") from None

    def close(self) -> None:
        pass

    def __enter__(self) -> "FrameFolderReader":
        return self

    def __exit__(self, *exc) -> None:
        pass


def open_video(path: str | os.PathLike, *, filename_tmpl: str | None = None,
               start_index: int | None = None, num_frames: int | None = None, **kwargs
               ) -> VideoReader | FrameFolderReader:
    """A reader for a video file or a rawframe folder (decided by what ``path`` is)."""
    p = Path(path)
    if p.is_dir():
        return FrameFolderReader(p, filename_tmpl=filename_tmpl, start_index=start_index,
                                 num_frames=num_frames)
    return VideoReader(p, **kwargs)
