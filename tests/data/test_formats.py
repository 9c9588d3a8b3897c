"""Annotation formats (tiny trees built on the fly): build_records, detect_format, spec parsing,
load_records and class_counts."""
from __future__ import annotations

import json
from pathlib import Path

import pytest

from vidcls.data.formats import (VideoRecord, build_records, class_counts, detect_format,
                                 load_records, parse_dataset_spec)


def touch(path: Path, text: str = "") -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path


# --------------------------------------------------------------------------- formats
def test_folder_format(tmp_path):
    for split in ("train", "val"):
        touch(tmp_path / split / "waving" / "a.mp4")
        touch(tmp_path / split / "waving" / "b.AVI")
        touch(tmp_path / split / "waving" / "notes.txt")  # not a video: ignored
        (tmp_path / split / "clapping" / "frames_01").mkdir(parents=True)  # a rawframe folder
    records, classes = build_records("folder", root=tmp_path, split="val")
    assert classes == ["clapping", "waving"]
    assert [(Path(r.path).relative_to(tmp_path).as_posix(), r.label) for r in records] == [
        ("val/clapping/frames_01", 0), ("val/waving/a.mp4", 1), ("val/waving/b.AVI", 1)]
    assert detect_format(tmp_path) == "folder"


def test_list_format_with_classes_and_multilabel(tmp_path):
    touch(tmp_path / "train.txt", "a/x.mp4 1\n# a comment\n\nb/y.mp4 0\n/abs/z.mp4 2\n")
    touch(tmp_path / "val.txt", "a/x.mp4 0 2\nb/y.mp4 1\n")
    touch(tmp_path / "classes.txt", "zero\none\ntwo\n")
    records, classes = build_records("list", root=tmp_path, split="train")
    assert classes == ["zero", "one", "two"]
    assert [(r.path, r.label) for r in records] == [
        (str(tmp_path / "a/x.mp4"), 1), (str(tmp_path / "b/y.mp4"), 0), ("/abs/z.mp4", 2)]
    val, _ = build_records("list", root=tmp_path, split="validation")
    assert [r.label for r in val] == [[0, 2], 1]
    # without classes.txt: numbered classes; labels must be integers
    touch(tmp_path / "other" / "list.txt", "v.mp4 3\n")
    recs, classes = build_records("list", root=tmp_path / "other",
                                  ann_file=tmp_path / "other" / "list.txt")
    assert classes == ["0", "1", "2", "3"] and recs[0].path == str(tmp_path / "other" / "v.mp4")
    touch(tmp_path / "bad.txt", "v.mp4 walking\n")
    with pytest.raises(ValueError, match=r"bad.txt:1: labels must be integers"):
        build_records("list", root=tmp_path, ann_file=tmp_path / "bad.txt")
    touch(tmp_path / "nolabel.txt", "v.mp4\n")
    with pytest.raises(ValueError, match="no label"):
        build_records("list", root=tmp_path, ann_file=tmp_path / "nolabel.txt")
    touch(tmp_path / "toobig.txt", "v.mp4 7\n")
    with pytest.raises(ValueError, match="label 7 but .*classes.txt lists only 3"):
        build_records("list", root=tmp_path, ann_file=tmp_path / "toobig.txt")
    with pytest.raises(FileNotFoundError, match="test list file not found"):
        build_records("list", root=tmp_path, split="test")


def test_rawframes_format(tmp_path):
    (tmp_path / "clips" / "v1").mkdir(parents=True)
    touch(tmp_path / "train_videofolder.txt", "clips/v1 120 4\nclips/v2 33 0\n")
    records, classes = build_records("rawframes", root=tmp_path)
    assert [(r.path, r.num_frames, r.label) for r in records] == [
        (str(tmp_path / "clips/v1"), 120, 4), (str(tmp_path / "clips/v2"), 33, 0)]
    assert len(classes) == 5
    assert detect_format(tmp_path) == "rawframes"
    touch(tmp_path / "broken.txt", "clips/v1 many 4\n")
    with pytest.raises(ValueError, match="num_frames must be an integer"):
        build_records("rawframes", root=tmp_path, ann_file=tmp_path / "broken.txt")


def test_kinetics_format(tmp_path):
    header = "label,youtube_id,time_start,time_end,split\n"
    touch(tmp_path / "annotations" / "train.csv", header + "abseiling,abc,10,20,train\n"
          "\"petting animal (not cat)\",def,0,10,train\nzumba,ghi,5,15,train\n")
    touch(tmp_path / "annotations" / "validate.csv", header + "zumba,jkl,30,40,val\n")
    # download layout: root/<split>/..., here with class folders for the training split
    touch(tmp_path / "train" / "abseiling" / "abc_000010_000020.mp4")
    touch(tmp_path / "train" / "petting_animal_(not_cat)" / "def_000000_000010.mp4")
    touch(tmp_path / "val" / "jkl_000030_000040.mp4")
    records, classes = build_records("kinetics", root=tmp_path, split="train")
    assert classes == ["abseiling", "petting animal (not cat)", "zumba"]
    rel = [Path(r.path).relative_to(tmp_path).as_posix() for r in records]
    assert rel == ["train/abseiling/abc_000010_000020.mp4",
                   "train/petting_animal_(not_cat)/def_000000_000010.mp4",
                   "train/ghi_000005_000015.mp4"]  # missing: flat path, reported when loaded
    assert [r.label for r in records] == [0, 1, 2]
    val, val_classes = build_records("kinetics", root=tmp_path, split="val")
    assert val_classes == classes  # class list always from train.csv
    assert [(Path(r.path).relative_to(tmp_path).as_posix(), r.label) for r in val] == [
        ("val/jkl_000030_000040.mp4", 2)]
    assert detect_format(tmp_path) == "kinetics"


def test_sthv2_format(tmp_path):
    labels = {"Moving something from left to right": "1", "Pushing something from right to left":
              "0", "Putting something on a surface": "2"}
    touch(tmp_path / "labels.json", json.dumps(labels))
    touch(tmp_path / "train.json", json.dumps([
        {"id": "78687", "label": "moving a cup from left to right",
         "template": "Moving [something] from left to right", "placeholders": ["a cup"]},
        {"id": "42", "label": "putting pen on a surface",
         "template": "Putting [something] on a surface", "placeholders": ["pen"]}]))
    touch(tmp_path / "validation.json", json.dumps([
        {"id": "7", "label": "x", "template": "Pushing [something] from right to left",
         "placeholders": ["x"]}]))
    (tmp_path / "20bn-something-something-v2").mkdir()
    records, classes = build_records("sthv2", root=tmp_path)
    assert classes == ["Pushing something from right to left",
                       "Moving something from left to right", "Putting something on a surface"]
    vdir = tmp_path / "20bn-something-something-v2"
    assert [(r.path, r.label) for r in records] == [(str(vdir / "78687.webm"), 1),
                                                    (str(vdir / "42.webm"), 2)]
    val, _ = build_records("sthv2", root=tmp_path, split="val")
    assert [(r.path, r.label) for r in val] == [(str(vdir / "7.webm"), 0)]
    assert detect_format(tmp_path) == "sthv2"
    touch(tmp_path / "bad.json", json.dumps([{"id": "1", "template": "Flying [something]"}]))
    with pytest.raises(ValueError, match=r"class 'Flying something'\) is not in"):
        build_records("sthv2", root=tmp_path, ann_file=tmp_path / "bad.json")


def test_ucf101_format(tmp_path):
    ann = tmp_path / "ucfTrainTestlist"
    touch(ann / "classInd.txt", "1 ApplyEyeMakeup\n2 Archery\n3 YoYo\n")
    touch(ann / "trainlist01.txt", "ApplyEyeMakeup/v_ApplyEyeMakeup_g08_c01.avi 1\n"
          "YoYo/v_YoYo_g09_c02.avi 3\n")
    touch(ann / "testlist01.txt", "Archery/v_Archery_g01_c01.avi\nYoYo/v_YoYo_g01_c03.avi\n")
    touch(ann / "trainlist02.txt", "Archery/v_Archery_g02_c01.avi 2\n")
    (tmp_path / "UCF-101").mkdir()
    records, classes = build_records("ucf101", root=tmp_path)
    assert classes == ["ApplyEyeMakeup", "Archery", "YoYo"]
    vdir = tmp_path / "UCF-101"
    assert [(r.path, r.label) for r in records] == [
        (str(vdir / "ApplyEyeMakeup/v_ApplyEyeMakeup_g08_c01.avi"), 0),
        (str(vdir / "YoYo/v_YoYo_g09_c02.avi"), 2)]
    test, _ = build_records("ucf101", root=tmp_path, split="test")
    assert [r.label for r in test] == [1, 2]  # from the folder name
    two, _ = build_records("ucf101", root=tmp_path, split_id=2)
    assert [r.label for r in two] == [1]
    assert detect_format(tmp_path) == "ucf101"


def test_hmdb51_format(tmp_path):
    splits = tmp_path / "testTrainMulti_7030_splits"
    touch(splits / "brush_hair_test_split1.txt", "bh_a.avi 1\nbh_b.avi 2\nbh_c.avi 0\n")
    touch(splits / "cartwheel_test_split1.txt", "cw_a.avi 2 \ncw_b.avi 1\n")
    touch(splits / "cartwheel_test_split2.txt", "cw_a.avi 1\ncw_b.avi 2\n")
    records, classes = build_records("hmdb51", root=tmp_path)
    assert classes == ["brush_hair", "cartwheel"]
    assert [(Path(r.path).relative_to(tmp_path).as_posix(), r.label) for r in records] == [
        ("brush_hair/bh_a.avi", 0), ("cartwheel/cw_b.avi", 1)]
    test, _ = build_records("hmdb51", root=tmp_path, split="test")
    assert [Path(r.path).name for r in test] == ["bh_b.avi", "cw_a.avi"]
    assert detect_format(tmp_path) == "hmdb51"


def test_jester_format(tmp_path):
    touch(tmp_path / "jester-v1-labels.csv", "Doing other things\nDrumming Fingers\n")
    touch(tmp_path / "jester-v1-train.csv", "34870;Drumming Fingers\n56557;Doing other things\n")
    touch(tmp_path / "jester-v1-validation.csv", "9223;Drumming Fingers\n")
    (tmp_path / "20bn-jester-v1").mkdir()
    records, classes = build_records("jester", root=tmp_path)
    assert classes == ["Doing other things", "Drumming Fingers"]
    fdir = tmp_path / "20bn-jester-v1"
    assert [(r.path, r.label) for r in records] == [(str(fdir / "34870"), 1),
                                                    (str(fdir / "56557"), 0)]
    val, _ = build_records("jester", root=tmp_path, split="val")
    assert [r.label for r in val] == [1]
    assert detect_format(tmp_path) == "jester"


def test_dataset_spec_parsing(tmp_path):
    touch(tmp_path / "train.txt", "v.mp4 0\n")
    assert parse_dataset_spec(f"list:{tmp_path}") == ("list", str(tmp_path), None)
    assert parse_dataset_spec(str(tmp_path)) == ("list", str(tmp_path), None)
    assert parse_dataset_spec(str(tmp_path / "train.txt")) == (
        "list", str(tmp_path), str(tmp_path / "train.txt"))
    with pytest.raises(ValueError, match="unknown dataset format 'avi'"):
        build_records("avi", root=tmp_path)


def test_load_records_reads_a_spec(tmp_path):
    touch(tmp_path / "train.txt", "a.mp4 1\nb.mp4 0\n")
    touch(tmp_path / "val.txt", "c.mp4 1\n")
    touch(tmp_path / "classes.txt", "zero\none\n")
    loaded = load_records(f"list:{tmp_path}")
    assert loaded.format == "list" and loaded.classes == ["zero", "one"]
    assert [(r.path, r.label) for r in loaded.records] == [(str(tmp_path / "a.mp4"), 1),
                                                          (str(tmp_path / "b.mp4"), 0)]
    fmt, records, _ = load_records(str(tmp_path), split="val")  # format detected
    assert fmt == "list" and [r.path for r in records] == [str(tmp_path / "c.mp4")]
    # a list-file spec gives its own annotation file; ann_file= overrides it
    assert len(load_records(str(tmp_path / "val.txt")).records) == 1
    assert len(load_records(str(tmp_path / "val.txt"), ann_file=tmp_path / "train.txt")
               .records) == 2
    assert load_records(str(tmp_path), classes=["x", "y"]).classes == ["x", "y"]  # an option


def test_load_records_names_a_missing_dataset(tmp_path):
    with pytest.raises(FileNotFoundError, match="nowhere is not a directory"):
        load_records(str(tmp_path / "nowhere"))
    touch(tmp_path / "train.txt", "a.mp4 0\n")
    with pytest.raises(FileNotFoundError, match="test list file not found"):
        load_records(f"list:{tmp_path}", split="test")


def test_class_counts_count_every_label_of_a_multilabel_sample():
    records = [VideoRecord("a", 0), VideoRecord("b", [0, 2]), VideoRecord("c", 2)]
    assert class_counts(records, 3) == [2, 0, 2]  # 4 labels on 3 samples


def test_class_counts_skip_labels_outside_the_classes():
    records = [VideoRecord("a", -1), VideoRecord("b", 5), VideoRecord("c", [1, 7])]
    assert class_counts(records, 2) == [0, 1]  # -1: unlabelled test sample; 5, 7: unknown
    assert class_counts([], 2) == [0, 0]


def test_list_paths_with_spaces_and_quotes(tmp_path):
    """Labels are read from the right, so a path may hold spaces; quoted paths (shell style)
    may hold anything; a trailing number that belongs to an existing file stays in its path."""
    touch(tmp_path / "videos" / "clip 2")  # a file whose name ends in a number
    touch(tmp_path / "train.txt",
          "videos/a b.mp4 0\n"
          "videos/two  spaces.mp4 1 2\n"
          "\"videos/a \\\"b\\\".mp4\" 1\n"
          "'videos/it is.mp4' 0 2\n"
          "videos/clip 2 1\n")
    records, classes = build_records("list", root=tmp_path, split="train")
    assert [(Path(r.path).relative_to(tmp_path).as_posix(), r.label) for r in records] == [
        ("videos/a b.mp4", 0), ("videos/two  spaces.mp4", [1, 2]), ('videos/a "b".mp4', 1),
        ("videos/it is.mp4", [0, 2]), ("videos/clip 2", 1)]
    assert classes == ["0", "1", "2"]
    touch(tmp_path / "open.txt", "\"videos/a b.mp4 0\n")
    with pytest.raises(ValueError, match=r"open.txt:1: .*quotation.*close the quote"):
        build_records("list", root=tmp_path, ann_file=tmp_path / "open.txt")
    touch(tmp_path / "noname.txt", "'a b.mp4'\n")
    with pytest.raises(ValueError, match="noname.txt:1: no label"):
        build_records("list", root=tmp_path, ann_file=tmp_path / "noname.txt")


def test_rawframe_folders_with_spaces(tmp_path):
    (tmp_path / "frames" / "my clip").mkdir(parents=True)
    (tmp_path / "frames" / "take 1").mkdir(parents=True)
    touch(tmp_path / "train.txt", "frames/my clip 30 2\nframes/take 1 12 0 1\n")
    records, _ = build_records("rawframes", root=tmp_path, split="train")
    assert [(Path(r.path).name, r.num_frames, r.label) for r in records] == [
        ("my clip", 30, 2), ("take 1", 12, [0, 1])]
    assert detect_format(tmp_path) == "rawframes"
    assert parse_dataset_spec(str(tmp_path / "train.txt"))[0] == "rawframes"
