"""`vidcls synth`, `vidcls data check`, `vidcls data info`, and check_records' modes."""
from __future__ import annotations

import json
import shutil

import pytest
from helpers.videos import encode, make_bad_files, moving_frames

from vidcls.cli import main
from vidcls.data.bad_files import check_records, check_video
from vidcls.data.formats import VideoRecord


@pytest.fixture(scope="module")
def synth_dir(tmp_path_factory):
    out = tmp_path_factory.mktemp("synth")
    assert main(["synth", str(out), "--kind", "appearance", "--num-classes", "3",
                 "--videos-per-class", "4", "--frames", "8", "--size", "32",
                 "--val-fraction", "0.25"]) == 0
    return out


def test_synth_command(synth_dir, capsys):
    assert len((synth_dir / "train.txt").read_text().splitlines()) == 9
    assert (synth_dir / "classes.txt").read_text().split("\n")[:3] == [
        "circle", "square", "triangle"]
    assert main(["synth", str(synth_dir), "--kind", "appearance", "--num-classes", "3",
                 "--videos-per-class", "4", "--frames", "8", "--size", "32",
                 "--val-fraction", "0.25"]) == 0
    assert "reused existing" in capsys.readouterr().out
    assert main(["synth", str(synth_dir / "x"), "--num-classes", "99"]) == 2
    assert "2..16 classes" in capsys.readouterr().err


def test_data_check_finds_bad_files(synth_dir, tmp_path, capsys):
    root = tmp_path / "ds"
    shutil.copytree(synth_dir, root)
    assert main(["data", "check", f"list:{root}", "--split", "val", "--quiet"]) == 0
    assert "no bad files (3 checked)" in capsys.readouterr().out
    (root / "videos" / "c01_00003.mp4").write_bytes(b"")  # a val video
    (root / "videos" / "c02_00003.mp4").unlink()
    report = tmp_path / "bad.json"
    code = main(["data", "check", str(root / "val.txt"), "--out", str(report), "--quiet",
                 "--workers", "2"])
    assert code == 1
    out = capsys.readouterr().out
    assert "2 bad files of 3 checked" in out and "empty file (0 bytes)" in out
    bad = json.loads(report.read_text())["bad_files"]
    assert bad == {str(root / "videos" / "c01_00003.mp4"): "empty file (0 bytes)",
                   str(root / "videos" / "c02_00003.mp4"): "file not found"}
    assert main(["data", "check", f"list:{tmp_path / 'nowhere'}", "--quiet"]) == 2


def test_data_info(synth_dir, capsys):
    assert main(["data", "info", str(synth_dir), "--split", "train"]) == 0
    out = capsys.readouterr().out
    assert "list dataset" in out and "9 samples, 3 classes" in out
    assert "     3  circle" in out


def test_check_modes(tmp_path):
    good = encode(tmp_path / "good.mp4", moving_frames(20, 32, 32), gop=5)
    bad = make_bad_files(tmp_path / "bad", good)
    records = [VideoRecord(str(good), 0)] + [VideoRecord(str(p), 0) for p in bad.values()]
    cheap = check_records(records, mode="open", workers=0)
    assert cheap.checked == 7 and str(bad["undecodable"]) not in cheap.files  # opens fine
    assert len(cheap) == 5
    full = check_records(records, mode="sample", workers=2)
    assert set(full.files) == {str(p) for p in bad.values()}
    assert check_video(str(good), mode="full") is None
    assert "decoding failed" in check_video(str(bad["undecodable"]), mode="full")
    with pytest.raises(ValueError, match="unknown check mode"):
        check_video(str(good), mode="deep")


def _phone_video(path, frames, *, display_ccw=None, rotate_tag=None):
    """``frames`` stored with a phone's rotation flag (see ``helpers.videos.encode``)."""
    from helpers.videos import encode

    return encode(path, frames, gop=None, display_ccw=display_ccw, rotate_tag=rotate_tag)


def test_data_check_reports_rotated_videos(tmp_path, capsys):
    import av

    frames = moving_frames(8, 32, 48)
    videos = {"plain.mp4": encode(tmp_path / "plain.mp4", frames),
              "tagged.mkv": _phone_video(tmp_path / "tagged.mkv", frames, rotate_tag=270)}
    if hasattr(av.video.stream.VideoStream, "set_display_rotation"):
        videos["portrait.mp4"] = _phone_video(tmp_path / "portrait.mp4", frames,
                                              display_ccw=-90)
    (tmp_path / "val.txt").write_text("".join(f"{name} 0\n" for name in videos))
    report = tmp_path / "report.json"
    for mode in ("open", "sample"):
        assert main(["data", "check", str(tmp_path / "val.txt"), "--mode", mode, "--quiet",
                     "--workers", "0", "--out", str(report)]) == 0
        out = capsys.readouterr().out
        assert f"no bad files ({len(videos)} checked)" in out
        assert "rotated 270°: 1" in out
        rotated = json.loads(report.read_text())["rotated"]
        assert rotated[str(tmp_path / "tagged.mkv")] == 270
        assert str(tmp_path / "plain.mp4") not in rotated
        if "portrait.mp4" in videos:
            assert "rotated 90°: 1, rotated 270°: 1" in out
            assert rotated[str(tmp_path / "portrait.mp4")] == 90
