"""VideoReader: frame-exact access by index, seeking efficiency, metadata, bad files."""
from __future__ import annotations

import itertools

import numpy as np
import pytest
from helpers.videos import (X264_BFRAMES, encode, make_bad_files, moving_frames, reference_decode,
                          write_rawframes)

from vidcls.data.video import (FrameFolderReader, VideoDecodeError, VideoReader,
                               detect_frame_template, open_video)

VFR_PTS = list(itertools.accumulate([0] + [1 + (i * 7) % 5 for i in range(35)]))

# name -> (frames kwargs, encode kwargs); each exercises a different decoding path
CASES = {
    "h264_gop5": ((40, 48, 64), dict(gop=5)),
    "h264_bframes": ((48, 48, 64), dict(gop=12, options=X264_BFRAMES)),
    "h264_bframes_open_gop": ((48, 48, 64), dict(gop=12, options={
        **X264_BFRAMES, "x264-params": X264_BFRAMES["x264-params"] + ":open-gop=1"})),
    "h264_odd_size_yuv444": ((30, 17, 33), dict(gop=5, pix_fmt="yuv444p")),
    "h264_vfr": ((36, 32, 48), dict(gop=6, pts=VFR_PTS)),
    "mkv_bframes": ((40, 32, 48), dict(gop=10, options=X264_BFRAMES)),
    "vp9_webm": ((30, 32, 48), dict(codec="libvpx-vp9", gop=7)),
    "vp8_webm": ((30, 32, 48), dict(codec="libvpx", gop=7)),
    "mpeg4_avi": ((30, 32, 48), dict(codec="mpeg4", gop=7)),
    "mpeg4_avi_bframes": ((30, 32, 48), dict(codec="mpeg4", gop=9, bframes=2)),
    "h264_raw_no_pts": ((30, 32, 48), dict(gop=8, fmt="h264", options=X264_BFRAMES)),
    "mpeg1_program_stream": ((40, 32, 48), dict(codec="mpeg1video", gop=12, bframes=2,
                                                fmt="mpeg")),
    "h264_mpegts": ((40, 32, 48), dict(gop=12, fmt="mpegts", options=X264_BFRAMES)),
}
EXT = {"mkv_bframes": ".mkv", "vp9_webm": ".webm", "vp8_webm": ".webm", "mpeg4_avi": ".avi",
       "mpeg4_avi_bframes": ".avi", "h264_raw_no_pts": ".h264", "mpeg1_program_stream": ".mpg",
       "h264_mpegts": ".ts"}


@pytest.fixture(scope="module")
def videos(tmp_path_factory):
    d = tmp_path_factory.mktemp("videos")
    out = {}
    for name, ((n, h, w), kw) in CASES.items():
        out[name] = encode(d / (name + EXT.get(name, ".mp4")), moving_frames(n, h, w), **kw)
    return out


@pytest.mark.parametrize("name", list(CASES))
def test_every_frame_matches_sequential_decode(videos, name):
    ref = reference_decode(videos[name])  # plain PyAV decode, independent of VideoReader
    with VideoReader(videos[name]) as r:
        assert r.num_frames == len(ref)
        for i in range(len(ref)):
            np.testing.assert_array_equal(r.get_frames([i])[0], ref[i], err_msg=f"frame {i}")
        rng = np.random.default_rng(1)
        for _ in range(5):  # random, unsorted, repeated indices in one call
            idx = rng.integers(0, len(ref), 8)
            np.testing.assert_array_equal(r.get_frames(idx), ref[idx])
        np.testing.assert_array_equal(r.get_frames(range(len(ref))), ref)  # dense = sequential


def test_the_test_videos_exercise_what_they_claim(videos):
    import av

    with av.open(str(videos["h264_bframes"])) as c:
        kinds = {str(f.pict_type).split(".")[-1] for f in c.decode(video=0)}
    assert {"I", "P", "B"} <= kinds or {"1", "2", "3"} <= kinds  # B-frames present
    with av.open(str(videos["h264_gop5"])) as c:
        keys = sum(p.is_keyframe for p in c.demux(video=0) if p.size)
    assert keys == 8  # 40 frames, a keyframe every 5
    with av.open(str(videos["h264_vfr"])) as c:
        pts = [p.pts for p in c.demux(video=0) if p.size]
    gaps = set(np.diff(sorted(pts)).tolist())
    assert len(gaps) > 2  # really variable frame rate
    with av.open(str(videos["h264_raw_no_pts"])) as c:
        assert all(p.pts is None for p in c.demux(video=0))


def test_metadata(videos):
    with VideoReader(videos["h264_odd_size_yuv444"]) as r:
        md = r.metadata
    assert (md.num_frames, md.width, md.height, md.codec) == (30, 33, 17, "h264")
    assert md.fps == pytest.approx(25.0)
    assert md.duration == pytest.approx(30 / 25.0)
    with VideoReader(videos["vp9_webm"]) as r:  # webm headers carry no frame count
        assert r.metadata.header_frames is None and r.num_frames == 30
        assert r.metadata.codec == "vp9"


def test_sparse_sampling_seeks_instead_of_decoding_everything(tmp_path):
    path = encode(tmp_path / "long.mp4", moving_frames(300, 32, 48), gop=25)
    ref = reference_decode(path)
    with VideoReader(path) as r:
        idx = [int(300 / 8 * (k + 0.5)) for k in range(8)]  # TSN test-time segment centres
        np.testing.assert_array_equal(r.get_frames(idx), ref[idx])
        # each wanted frame costs at most (distance to its keyframe + decoder delay)
        assert r.frames_decoded < 300 * 0.6, r.frames_decoded
        assert r.seeks >= 4
        before = r.frames_decoded
        r.get_frames([299])  # the last frame: one seek, at most a GOP of decoding
        assert r.frames_decoded - before <= 25 + 4


def test_unwanted_non_reference_frames_are_not_decoded(videos):
    path = videos["h264_bframes"]
    ref = reference_decode(path)
    idx = [3, 9, 17, 18, 30, 41]
    with VideoReader(path) as fast, VideoReader(path, skip_nonref=False) as plain:
        np.testing.assert_array_equal(fast.get_frames(idx), ref[idx])
        np.testing.assert_array_equal(plain.get_frames(idx), ref[idx])
        assert fast.frames_decoded < 0.8 * plain.frames_decoded
        # the setting does not leak into a later full decode
        np.testing.assert_array_equal(fast.decode_all(), ref)


def test_nearby_frames_share_one_seek(tmp_path):
    path = encode(tmp_path / "v.mp4", moving_frames(60, 32, 48), gop=30)
    with VideoReader(path) as r:
        r.get_frames([31, 33, 35, 40])  # all after keyframe 30
        assert r.seeks == 1
        assert r.frames_decoded <= 40 - 30 + 1 + 4


def _decode_order(path) -> tuple[list[int], set[int]]:
    """Packet pts in decode order, and the keyframes' pts (read by PyAV, not VideoReader)."""
    import av

    with av.open(str(path)) as c:
        packets = [(p.pts, p.is_keyframe) for p in c.demux(video=0) if p.size]
    return [pts for pts, _ in packets], {pts for pts, key in packets if key}


@pytest.mark.parametrize("threads", [1, 4])
def test_reading_stops_at_the_wanted_frames_packet(videos, threads):
    """From the keyframe up to the wanted frame's own packet, and not one packet more: the
    decoder is drained there instead of fed the frames it holds back for B-frame reordering
    (and one more per frame thread) until the wanted frame comes out."""
    path = videos["h264_bframes"]  # 48 frames, a keyframe every 12, B-pyramid
    ref = reference_decode(path)
    order, keys = _decode_order(path)
    pts = sorted(order)  # presentation order
    for target in (5, 6, 17, 30, 47):
        key = max(k for k in keys if k <= pts[target])
        with VideoReader(path, threads=threads, skip_nonref=False) as r:
            np.testing.assert_array_equal(r.get_frames([target]), ref[[target]])
            assert r.packets_read == order.index(pts[target]) - order.index(key) + 1, target


@pytest.mark.parametrize("name", ["h264_bframes", "h264_bframes_open_gop", "vp9_webm",
                                  "mpeg4_avi_bframes", "h264_mpegts"])
def test_frame_threads_give_the_same_frames(videos, name):
    """Frame-threaded decoding (what ``threads=0`` picks on a multi-core CPU) holds several
    frames in flight; draining hands them out complete, in order, as a sequential decode."""
    ref = reference_decode(videos[name])
    with VideoReader(videos[name], threads=3) as r:
        rng = np.random.default_rng(2)
        for _ in range(5):
            idx = rng.integers(0, len(ref), 8)
            np.testing.assert_array_equal(r.get_frames(idx), ref[idx])
        np.testing.assert_array_equal(r.get_frames(range(len(ref))), ref)


@pytest.mark.parametrize("threads", [1, 0])
def test_tsn_segment_clips_are_exact(tmp_path, threads):
    """8-segment test clips (centres) and train clips (random frame per segment), as the
    dataset asks for them, equal the same frames of a full sequential decode."""
    from vidcls.data.sampling import segment_indices

    path = encode(tmp_path / "v.mp4", moving_frames(120, 32, 48), gop=30,
                  options=X264_BFRAMES)
    ref = reference_decode(path)
    rng = np.random.default_rng(0)
    clips = [segment_indices(8, len(ref), train=False)[0]]
    clips += [segment_indices(8, len(ref), train=True, rng=rng)[0] for _ in range(6)]
    for idx in clips:
        with VideoReader(path, threads=threads) as r:  # one reader per clip, as the dataset
            np.testing.assert_array_equal(r.get_frames(idx), ref[idx])


@pytest.mark.parametrize("kind", ["mjpeg_full_range", "h264_10bit"])
def test_rgb_conversion_matches_pyav_for_other_pixel_formats(tmp_path, kind):
    """The reader's one shared RGB converter gives what PyAV's per-frame conversion gives,
    also for full-range (JPEG) and 10-bit sources."""
    kw = (dict(codec="mjpeg", gop=1, pix_fmt="yuvj420p") if kind == "mjpeg_full_range"
          else dict(gop=6, pix_fmt="yuv420p10le"))
    path = encode(tmp_path / (kind + (".avi" if kind.startswith("mjpeg") else ".mkv")),
                  moving_frames(12, 32, 48), **kw)
    ref = reference_decode(path)
    with VideoReader(path) as r:
        np.testing.assert_array_equal(r.get_frames([7, 2, 11, 0]), ref[[7, 2, 11, 0]])


def test_bad_indices_and_empty_request(videos):
    with VideoReader(videos["h264_gop5"]) as r:
        with pytest.raises(IndexError, match="out of range.*40 frames"):
            r.get_frames([40])
        with pytest.raises(IndexError):
            r.get_frames([-1])
        with pytest.raises(ValueError, match="at least one index"):
            r.get_frames([])


@pytest.fixture(scope="module")
def bad_files(tmp_path_factory):
    d = tmp_path_factory.mktemp("bad")
    good = encode(d / "good.mp4", moving_frames(20, 32, 32), gop=5)
    return make_bad_files(d, good)


@pytest.mark.parametrize("kind,reason", [
    ("missing", "file not found"), ("empty", "empty file"), ("not_video", "not a readable video"),
    ("audio_only", "no video stream.*audio"), ("truncated", "not a readable video"),
])
def test_bad_files_fail_on_open_with_a_clear_reason(bad_files, kind, reason):
    with pytest.raises(VideoDecodeError, match=reason) as e:
        VideoReader(bad_files[kind])
    assert e.value.path == str(bad_files[kind])


def test_undecodable_file_fails_on_decode(bad_files):
    with VideoReader(bad_files["undecodable"]) as r:  # container and index are intact
        with pytest.raises(VideoDecodeError, match="decod"):
            r.get_frames([0, 5])


def test_truncated_faststart_and_webm_are_detected(tmp_path):
    frames = moving_frames(40, 32, 48)
    for name, kw in [("fs.mp4", dict(container_options={"movflags": "faststart"})),
                     ("v.webm", dict(codec="libvpx-vp9"))]:
        full = encode(tmp_path / name, frames, gop=8, **kw)
        data = full.read_bytes()
        cut = tmp_path / ("cut_" + name)
        cut.write_bytes(data[: len(data) * 6 // 10])
        with pytest.raises(VideoDecodeError, match="truncated"):
            VideoReader(cut)
        with VideoReader(cut, allow_truncated=True) as r:  # what is there stays readable
            assert 0 < r.num_frames < 40 and r.truncated
            n = r.num_frames
            ref = reference_decode(full)  # frames before the cut decode as in the full file
            np.testing.assert_array_equal(r.get_frames([0, n // 2]), ref[[0, n // 2]])


@pytest.mark.parametrize("tmpl,start", [("img_{:05d}.jpg", 1), ("{:05d}.jpg", 1),
                                        ("img_{:05d}.png", 0), ("frame{:06d}.jpg", 1)])
def test_frame_folder_reader(tmp_path, tmpl, start):
    frames = moving_frames(12, 24, 40)
    d = write_rawframes(tmp_path / "clip", frames, tmpl, start)
    (d / "notes.txt").write_text("other files are ignored")
    assert detect_frame_template(d) == (tmpl, start)
    with open_video(d) as r:  # template detected
        assert isinstance(r, FrameFolderReader) and r.num_frames == 12
        got = r.get_frames([0, 11, 5, 5])
    assert got.shape == (4, 24, 40, 3) and got.dtype == np.uint8
    if tmpl.endswith("png"):
        np.testing.assert_array_equal(got, frames[[0, 11, 5, 5]])
    else:  # jpeg is lossy: each image must still be closest to the frame it should be
        err = np.abs(got[:, None].astype(int) - frames[None].astype(int)).mean(axis=(2, 3, 4))
        assert err.argmin(axis=1).tolist() == [0, 11, 5, 5]
    with pytest.raises(IndexError):
        r.get_frames([12])


def test_frame_folder_errors(tmp_path):
    with pytest.raises(VideoDecodeError, match="frame folder not found"):
        FrameFolderReader(tmp_path / "nope")
    (tmp_path / "empty").mkdir()
    with pytest.raises(VideoDecodeError, match="known template"):
        FrameFolderReader(tmp_path / "empty")
    d = write_rawframes(tmp_path / "short", moving_frames(3, 8, 8))
    with FrameFolderReader(d, num_frames=5) as r:  # list file claims more frames than exist
        with pytest.raises(VideoDecodeError, match="frame image missing"):
            r.get_frames([4])


# ------------------------------------------------------------------ rotation (phone videos)
def encode_phone_video(path, frames: np.ndarray, *, display_ccw: int | None = None,
                       rotate_tag: int | None = None):
    """A video stored as ``frames`` with a phone's rotation flag (``helpers.videos.encode``),
    4:4:4 so colours survive for the comparisons."""
    return encode(path, frames, pix_fmt="yuv444p", gop=None, display_ccw=display_ccw,
                  rotate_tag=rotate_tag)


needs_display_matrix = pytest.mark.skipif(
    not hasattr(__import__("av").video.stream.VideoStream, "set_display_rotation"),
    reason="this PyAV cannot write a display matrix")


@pytest.mark.parametrize("flag, clockwise", [
    pytest.param({"display_ccw": -90}, 90, marks=needs_display_matrix, id="portrait-phone"),
    pytest.param({"display_ccw": 90}, 270, marks=needs_display_matrix, id="display-270"),
    pytest.param({"display_ccw": 180}, 180, marks=needs_display_matrix, id="upside-down"),
    pytest.param({"rotate_tag": 90}, 90, id="rotate-tag-mkv"),
])
def test_rotated_videos_come_out_as_a_player_shows_them(tmp_path, flag, clockwise):
    from vidcls.data.sources import iter_frames

    stored = moving_frames(10, 24, 40)  # landscape as stored: (T, 24, 40, 3)
    path = encode_phone_video(tmp_path / ("v.mkv" if "rotate_tag" in flag else "v.mp4"),
                              stored, **flag)
    decoded = reference_decode(path)  # plain PyAV: the frames as stored, (T, 24, 40, 3)
    assert decoded.shape == stored.shape
    shown = np.stack([np.rot90(f, k=-clockwise // 90) for f in decoded])  # turned clockwise
    # turning clockwise takes the stored top-left corner (the frame marker) to the top right
    # at 90, the bottom right at 180, the bottom left at 270
    rows, cols = {90: (slice(0, 4), slice(-4, None)), 180: (slice(-4, None), slice(-4, None)),
                  270: (slice(-4, None), slice(0, 4))}[clockwise]
    assert np.array_equal(np.sort(shown[5, rows, cols], None), np.sort(decoded[5, :4, :4], None))
    with VideoReader(path) as r:
        assert r.rotation == clockwise
        md = r.metadata
        assert (md.width, md.height, md.rotation) == (shown.shape[2], shown.shape[1], clockwise)
        np.testing.assert_array_equal(r.get_frames([7, 2, 2]), shown[[7, 2, 2]])
        np.testing.assert_array_equal(r.decode_all(), shown)
    with VideoReader(path) as r:  # rotation known before any frame was asked for
        assert (r.metadata.width, r.metadata.height) == (shown.shape[2], shown.shape[1])
        np.testing.assert_array_equal(r.get_frames([0]), shown[:1])
    np.testing.assert_array_equal(np.stack(list(iter_frames(path))), shown)  # stream sources


def test_unrotated_video_reports_no_rotation(videos):
    with VideoReader(videos["h264_gop5"]) as r:
        assert r.rotation == 0 and r.metadata.rotation == 0
