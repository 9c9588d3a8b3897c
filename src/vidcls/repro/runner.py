"""The one subprocess job pool: ``vidcls bench accuracy`` trains its runs through it, the demo
trains TSN and TSM side by side through it.

Why processes: each run gets the same budget by construction, a crashed run cannot take the
others down, and small convolutions run better as one single-threaded process per core than
as one multi-threaded process (no OpenMP synchronisation, no spin-waiting when the machine is
busy). So every job is a command line, and the pool gives each ``cores // parallel`` threads
(``OMP_NUM_THREADS`` / ``MKL_NUM_THREADS``).

Contract of :func:`run_jobs`:

* jobs start in list order, at most ``parallel`` at a time, a job only once every job named in
  its ``after`` has succeeded; a job whose ``after`` job failed never starts (``skipped``);
* a job succeeded when it exits with code 0 and, if it names an ``output`` file, left that file
  (removed before the job starts, so a stale one never counts);
* a job's stdout and stderr are appended to its ``log``; :meth:`JobResult.tail` reads the end;
* ``on_finish(result)`` runs in the calling process as each job ends, in the order they end
  (record results, print progress; an exception it raises stops the pool);
  ``on_poll(names)`` runs every ``poll_seconds`` with the jobs still running (progress bars);
* the return value has one :class:`JobResult` per job, in the order of ``jobs``;
* on any exception (SIGTERM included: it is turned into ``KeyboardInterrupt`` while the pool
  runs) the running jobs are stopped: SIGTERM, ``grace_seconds`` to exit (our training
  workers checkpoint), then SIGKILL; ``grace_seconds=0`` kills at once.

:func:`run_json` runs one worker command synchronously and reads the JSON line it prints last
(``vidcls bench cost``'s fresh-process measurements).
"""
from __future__ import annotations

import json
import os
import signal
import subprocess
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

__all__ = ["Job", "JobResult", "run_jobs", "run_json"]


@dataclass(frozen=True)
class Job:
    """One command line of the pool."""

    name: str
    cmd: list[str]
    log: Path                       # stdout + stderr, appended
    after: tuple[str, ...] = ()     # names of jobs that must succeed before this one starts
    output: Path | None = None      # a file the job must leave to count as succeeded


@dataclass
class JobResult:
    """How one job ended. ``returncode`` is None for a job that never started."""

    name: str
    ok: bool
    returncode: int | None
    seconds: float
    log: Path

    @property
    def skipped(self) -> bool:
        return self.returncode is None

    def tail(self, lines: int = 8) -> list[str]:
        """The last ``lines`` lines of the job's log (none if it wrote nothing)."""
        if not self.log.is_file():
            return []
        return self.log.read_text(errors="replace").strip().splitlines()[-lines:]


def _interrupt(signum, frame):
    raise KeyboardInterrupt(f"signal {signum}")


def _on_sigterm(handler):
    """Install ``handler`` for SIGTERM (main thread only); returns the previous one."""
    if handler is None or threading.current_thread() is not threading.main_thread():
        return None
    return signal.signal(signal.SIGTERM, handler)


def _stop(procs: list[subprocess.Popen], grace_seconds: float) -> None:
    if grace_seconds <= 0:
        for proc in procs:
            proc.kill()
    else:
        for proc in procs:
            proc.terminate()
    for proc in procs:
        try:
            proc.wait(timeout=max(grace_seconds, 1.0))
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def _thread_env(threads: int) -> dict[str, str]:
    """This process's environment with ``threads`` intra-op threads for a worker."""
    return {**os.environ, "OMP_NUM_THREADS": str(threads), "MKL_NUM_THREADS": str(threads)}


def run_jobs(jobs: list[Job], *, parallel: int, threads: int | None = None,
             poll_seconds: float = 0.2,
             on_finish: Callable[[JobResult], None] | None = None,
             on_poll: Callable[[list[str]], None] | None = None,
             grace_seconds: float = 60.0) -> dict[str, JobResult]:
    """Run ``jobs`` as subprocesses, ``parallel`` at a time (see the module docstring for the
    contract); ``threads`` per job defaults to ``cores // parallel``."""
    names = [j.name for j in jobs]
    if len(set(names)) != len(names):
        dup = sorted({n for n in names if names.count(n) > 1})
        raise ValueError(f"job names must be unique; repeated: {', '.join(dup)}")
    unknown = sorted({a for j in jobs for a in j.after} - set(names))
    if unknown:
        raise ValueError(f"jobs wait for unknown job(s) {', '.join(unknown)}; name jobs of "
                         f"this pool in `after`")
    parallel = max(1, parallel)
    env = _thread_env(threads or max(1, (os.cpu_count() or 1) // parallel))
    results: dict[str, JobResult] = {}
    queue = list(jobs)
    running: dict[str, tuple[Job, subprocess.Popen, float]] = {}

    def skip_blocked() -> None:
        """Jobs waiting for a failed (or skipped) job never start."""
        changed = True
        while changed:
            changed = False
            for job in list(queue):
                if any(a in results and not results[a].ok for a in job.after):
                    queue.remove(job)
                    results[job.name] = JobResult(job.name, False, None, 0.0, job.log)
                    changed = True

    def start(job: Job) -> None:
        job.log.parent.mkdir(parents=True, exist_ok=True)
        if job.output is not None:
            job.output.unlink(missing_ok=True)
        with open(job.log, "a") as log:  # the child keeps its own descriptor
            proc = subprocess.Popen(job.cmd, stdout=log, stderr=subprocess.STDOUT, env=env)
        running[job.name] = (job, proc, time.perf_counter())

    previous = _on_sigterm(_interrupt)
    try:
        while queue or running:
            skip_blocked()
            for job in [j for j in queue if all(a in results for a in j.after)]:
                if len(running) >= parallel:
                    break
                queue.remove(job)
                start(job)
            if not running:
                # what is left waits for jobs that will never succeed (a cycle in `after`)
                for job in queue:
                    results[job.name] = JobResult(job.name, False, None, 0.0, job.log)
                queue.clear()
                break
            time.sleep(poll_seconds)
            if on_poll is not None:
                on_poll(list(running))
            for name in [n for n, (_, p, _) in running.items() if p.poll() is not None]:
                job, proc, t0 = running.pop(name)
                ok = proc.returncode == 0 and (job.output is None or job.output.is_file())
                result = JobResult(name, ok, proc.returncode, time.perf_counter() - t0, job.log)
                results[name] = result
                if on_finish is not None:
                    on_finish(result)
    finally:
        _on_sigterm(previous)
        _stop([p for _, p, _ in running.values()], grace_seconds)
    return {name: results[name] for name in names}


def run_json(cmd: list[str], timeout: float, env: dict[str, str] | None = None) -> dict:
    """Run a worker that prints one JSON object on its last stdout line; returns that object,
    or ``{"error": ...}`` (timeout, or the exit code with the last lines of its output)."""
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, env=env)
    except subprocess.TimeoutExpired:
        return {"error": f"timed out after {timeout:.0f}s"}
    if proc.returncode != 0:
        tail = (proc.stderr or proc.stdout).strip().splitlines()[-3:]
        return {"error": f"exit code {proc.returncode}: " + " | ".join(tail)}
    return json.loads(proc.stdout.strip().splitlines()[-1])
