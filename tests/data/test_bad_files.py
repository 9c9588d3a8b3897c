"""BadFileReport: merging reports and batches, summary, writing txt / json."""
from __future__ import annotations

import json

from vidcls.data.bad_files import BadFileReport


def test_bad_file_report_write_and_merge(tmp_path):
    a = BadFileReport().update(["/x.mp4: empty file (0 bytes)", ("/y.mp4", "file not found")])
    b = BadFileReport().update({"bad": ["/x.mp4: empty file (0 bytes)"]})
    a.update(b)
    assert len(a) == 2 and a.substitutions == 3
    a.write(tmp_path / "bad.txt")
    assert (tmp_path / "bad.txt").read_text() == (
        "/x.mp4\tempty file (0 bytes)\n/y.mp4\tfile not found\n")
    a.write(tmp_path / "bad.json")
    assert json.loads((tmp_path / "bad.json").read_text())["bad_files"]["/y.mp4"] == \
        "file not found"
    assert BadFileReport().summary() == "no bad files"
