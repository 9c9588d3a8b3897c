"""Dynamic batching on its own: grouping, limits, errors, give-ups and shut-down, and the
batched forward pass equal to Predictor's one-video one."""
from __future__ import annotations

import asyncio
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import pytest
import torch

from vidcls.inference.predict import Predictor
from vidcls.serve.batching import DynamicBatcher, QueueFull, predict_views


class Recorder:
    """A ``run_batch`` that squares numbers, remembers its batches, and can be held."""

    def __init__(self, fail_on=None):
        self.batches, self.fail_on = [], fail_on
        self.release = threading.Event()
        self.release.set()

    def __call__(self, items):
        self.release.wait(10)
        self.batches.append(list(items))
        if self.fail_on is not None and self.fail_on in items:
            raise ValueError(f"cannot do {self.fail_on}")
        return [x * x for x in items]


def _run(coro):
    return asyncio.run(asyncio.wait_for(coro, 20))


async def _with_batcher(run_batch, body, **options):
    with ThreadPoolExecutor(1) as pool:
        sizes = []
        batcher = DynamicBatcher(run_batch, pool, on_batch=sizes.append, **options)
        batcher.start()
        try:
            return await body(batcher), sizes
        finally:
            await batcher.close()


def test_concurrent_requests_are_grouped_up_to_max_batch():
    recorder = Recorder()

    async def body(batcher):
        return await asyncio.gather(*(batcher.submit(i) for i in range(7)))

    results, sizes = _run(_with_batcher(recorder, body, max_batch=3, max_wait_ms=50))
    assert results == [i * i for i in range(7)]  # each caller gets its own result
    assert sizes == [3, 3, 1] and [len(b) for b in recorder.batches] == sizes
    assert sorted(x for b in recorder.batches for x in b) == list(range(7))


def test_max_batch_one_turns_batching_off():
    recorder = Recorder()

    async def body(batcher):
        return await asyncio.gather(*(batcher.submit(i) for i in range(4)))

    results, sizes = _run(_with_batcher(recorder, body, max_batch=1, max_wait_ms=50))
    assert results == [0, 1, 4, 9] and sizes == [1, 1, 1, 1]


def test_requests_queue_while_a_batch_runs_and_form_the_next():
    recorder = Recorder()

    async def body(batcher):
        recorder.release.clear()  # hold the model thread on the first batch
        first = asyncio.ensure_future(batcher.submit(0))
        await asyncio.sleep(0.05)
        rest = [asyncio.ensure_future(batcher.submit(i)) for i in range(1, 5)]
        await asyncio.sleep(0.05)
        recorder.release.set()
        return await asyncio.gather(first, *rest)

    results, sizes = _run(_with_batcher(recorder, body, max_batch=8, max_wait_ms=0))
    assert results == [0, 1, 4, 9, 16] and sizes == [1, 4]


def test_a_lone_request_waits_at_most_max_wait():
    async def body(batcher):
        start = time.perf_counter()
        await batcher.submit(3)
        return time.perf_counter() - start

    waited, _ = _run(_with_batcher(Recorder(), body, max_batch=8, max_wait_ms=30))
    assert 0.025 <= waited < 1.0


def test_an_error_reaches_every_request_of_its_batch_and_the_next_batch_works():
    recorder = Recorder(fail_on=2)

    async def body(batcher):
        failed = await asyncio.gather(*(batcher.submit(i) for i in (1, 2)),
                                      return_exceptions=True)
        return failed, await batcher.submit(5)

    (failed, after), _ = _run(_with_batcher(recorder, body, max_batch=4, max_wait_ms=30))
    assert all(isinstance(e, ValueError) and "cannot do 2" in str(e) for e in failed)
    assert after == 25


def test_a_request_given_up_before_its_batch_runs_is_left_out():
    recorder = Recorder()

    async def body(batcher):
        recorder.release.clear()
        first = asyncio.ensure_future(batcher.submit(0))
        await asyncio.sleep(0.05)  # the first batch holds the model thread
        gone = asyncio.ensure_future(batcher.submit(1))
        kept = asyncio.ensure_future(batcher.submit(2))
        await asyncio.sleep(0.01)
        gone.cancel()  # its client disconnected
        recorder.release.set()
        return await asyncio.gather(first, kept)

    results, sizes = _run(_with_batcher(recorder, body, max_batch=8, max_wait_ms=0))
    assert results == [0, 4] and recorder.batches == [[0], [2]]


def test_a_full_queue_refuses_and_close_fails_what_waits():
    recorder = Recorder()

    async def body(batcher):
        recorder.release.clear()
        running = asyncio.ensure_future(batcher.submit(0))
        await asyncio.sleep(0.05)
        waiting = [asyncio.ensure_future(batcher.submit(i)) for i in (1, 2)]
        await asyncio.sleep(0.01)
        with pytest.raises(QueueFull, match="2 requests are already waiting"):
            await batcher.submit(3)
        await batcher.close()
        recorder.release.set()
        outcomes = await asyncio.gather(*waiting, return_exceptions=True)
        running.cancel()
        return outcomes

    outcomes, _ = _run(_with_batcher(recorder, body, max_batch=8, max_wait_ms=0, max_queue=2))
    assert all(isinstance(e, RuntimeError) and "shutting down" in str(e) for e in outcomes)


def test_a_batcher_that_is_not_running_says_so():
    batcher = DynamicBatcher(Recorder(), ThreadPoolExecutor(1))
    with pytest.raises(RuntimeError, match="not running"):
        asyncio.run(batcher.submit(1))
    with pytest.raises(ValueError, match="max_batch must be >= 1"):
        DynamicBatcher(Recorder(), ThreadPoolExecutor(1), max_batch=0)


def test_predict_views_equals_predictor_per_clip(assets):
    predictor = Predictor(assets["tsm"])
    one = predictor.dataset([assets["videos"][0]])[0]["clip"]  # (T, 3, H, W)
    views = predictor.dataset([assets["videos"][1]], num_clips=2, num_crops=3)[0]["clip"]
    other = predictor.dataset([assets["videos"][2]], num_clips=3)[0]["clip"]  # (3, T, 3, H, W)
    assert one.dim() == 4 and views.shape[0] == 6 and other.shape[0] == 3
    batched = predict_views(predictor.model, [one, views, other], mean=predictor.mean,
                            std=predictor.std, device=predictor.device)
    for clip, probs in zip([one, views, other], batched):
        torch.testing.assert_close(probs, predictor.probabilities(clip), atol=1e-6, rtol=0)
    assert [int(p.argmax()) for p in batched] == [0, 1, 2]
