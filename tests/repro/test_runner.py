"""The subprocess job pool (:mod:`vidcls.repro.runner`): results in job order, success = exit 0
and the promised output file, failures reported with the log's tail, dependants of a failed
job never started, workers stopped when the caller raises; ``run_json`` reads a worker's last
line."""
from __future__ import annotations

import os
import sys
import time
from pathlib import Path

import pytest

from vidcls.repro.runner import Job, run_jobs, run_json


def _py(code: str) -> list[str]:
    return [sys.executable, "-c", code]


def _writer(tmp: Path, name: str, *, sleep: float = 0.0, exit_code: int = 0,
            after: tuple[str, ...] = ()) -> Job:
    """A job that prints its thread setting, sleeps, writes ``name.out`` and exits."""
    out = tmp / f"{name}.out"
    code = (f"import os, sys, time; print('threads', os.environ['OMP_NUM_THREADS'], flush=True); "
            f"time.sleep({sleep}); open({str(out)!r}, 'w').write('done'); "
            f"print('bye', file=sys.stderr); sys.exit({exit_code})")
    return Job(name, _py(code), tmp / f"{name}.log", after=after, output=out)


def test_jobs_run_in_parallel_and_results_keep_the_job_order(tmp_path):
    # the first job is the slowest: others end before it (they ran beside it), but its
    # result still comes first
    jobs = [_writer(tmp_path, "j0", sleep=2.0)] + [_writer(tmp_path, f"j{i}") for i in (1, 2, 3)]
    finished = []
    results = run_jobs(jobs, parallel=2, threads=3, poll_seconds=0.05,
                       on_finish=lambda r: finished.append(r.name))
    assert list(results) == ["j0", "j1", "j2", "j3"]
    assert finished.index("j1") < finished.index("j0")
    assert sorted(finished) == ["j0", "j1", "j2", "j3"]
    for r in results.values():
        assert r.ok and r.returncode == 0 and not r.skipped and r.seconds > 0
        assert (tmp_path / f"{r.name}.out").read_text() == "done"
        # stdout and stderr both land in the job's log; the pool set the thread count
        assert r.tail(5) == ["threads 3", "bye"]


def test_failure_is_reported_and_its_dependants_never_start(tmp_path):
    jobs = [_writer(tmp_path, "bad", exit_code=3),
            _writer(tmp_path, "needs_bad", after=("bad",)),
            _writer(tmp_path, "needs_needs_bad", after=("needs_bad",)),
            _writer(tmp_path, "independent"),
            _writer(tmp_path, "needs_independent", after=("independent",))]
    seen = []
    results = run_jobs(jobs, parallel=1, poll_seconds=0.02, on_finish=seen.append)
    assert not results["bad"].ok and results["bad"].returncode == 3
    assert results["bad"].tail(1) == ["bye"]
    for name in ("needs_bad", "needs_needs_bad"):
        assert results[name].skipped and not results[name].ok
        assert not (tmp_path / f"{name}.out").exists() and not (tmp_path / f"{name}.log").exists()
    assert results["independent"].ok and results["needs_independent"].ok
    # on_finish hears of every job that ran (failed ones too), never of skipped ones
    assert sorted(r.name for r in seen) == ["bad", "independent", "needs_independent"]


def test_success_needs_the_output_file_and_a_stale_one_does_not_count(tmp_path):
    out = tmp_path / "result.json"
    out.write_text("from an earlier run")
    job = Job("quiet", _py("pass"), tmp_path / "quiet.log", output=out)
    r = run_jobs([job], parallel=1, poll_seconds=0.02)["quiet"]
    assert r.returncode == 0 and not r.ok and not out.exists()
    # the log is appended to, across runs
    job = Job("talk", _py("print('hi')"), tmp_path / "talk.log")
    run_jobs([job, Job("talk2", job.cmd, job.log)], parallel=1, poll_seconds=0.02)
    assert (tmp_path / "talk.log").read_text().split() == ["hi", "hi"]


def test_an_exception_in_the_caller_stops_the_running_workers(tmp_path):
    pid_file = tmp_path / "sleeper.pid"
    sleeper = Job("sleeper", _py(f"import os, time; open({str(pid_file)!r}, 'w')"
                                 f".write(str(os.getpid())); time.sleep(120)"),
                  tmp_path / "sleeper.log")
    quick = Job("quick", _py("import time; time.sleep(0.5)"), tmp_path / "quick.log")

    def on_finish(result):
        raise RuntimeError(f"{result.name} ended")

    start = time.perf_counter()
    with pytest.raises(RuntimeError, match="quick ended"):
        run_jobs([sleeper, quick], parallel=2, poll_seconds=0.05, on_finish=on_finish,
                 grace_seconds=0)
    assert time.perf_counter() - start < 30
    pid = int(pid_file.read_text())
    with pytest.raises(ProcessLookupError):  # killed and reaped
        os.kill(pid, 0)


def test_job_lists_are_checked():
    job = Job("a", _py("pass"), Path("a.log"))
    with pytest.raises(ValueError, match="unique; repeated: a"):
        run_jobs([job, job], parallel=1)
    with pytest.raises(ValueError, match="unknown job.*nope"):
        run_jobs([Job("b", _py("pass"), Path("b.log"), after=("nope",))], parallel=1)


def test_run_json_reads_the_last_line_or_says_what_went_wrong():
    assert run_json(_py("print('noise'); print('{\"x\": 1}')"), timeout=60) == {"x": 1}
    err = run_json(_py("import sys; print('boom', file=sys.stderr); sys.exit(4)"), timeout=60)
    assert err == {"error": "exit code 4: boom"}
    assert run_json(_py("import time; time.sleep(30)"), timeout=1) == {
        "error": "timed out after 1s"}
