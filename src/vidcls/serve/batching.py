"""Dynamic batching: concurrent predict requests for one model share one forward pass.

A model on a GPU (and, less so, on a CPU) classifies 8 clips in far less than 8 times the time
of one. Requests arrive one by one, so :class:`DynamicBatcher` waits for the first one, then at
most ``max_wait_ms`` for others, and hands up to ``max_batch`` of them to one call of
``run_batch`` in the model's own thread. While that call runs, new requests queue up and form
the next batch at once, so a busy server batches without waiting at all and an idle one adds at
most ``max_wait_ms`` to a request. ``max_batch=1`` turns batching off.

:func:`predict_views` is the batched forward itself: the views of every request concatenated,
one model call, and each request's view probabilities averaged exactly like
:func:`vidcls.engine.inference.forward_views` (and so :class:`vidcls.inference.predict.Predictor`)
does for one video.
"""
from __future__ import annotations

import asyncio
import collections
from concurrent.futures import Executor
from typing import Any, Callable, Sequence

import torch
from torch import nn

from vidcls.data.transforms import normalize
from vidcls.engine.inference import average_views
from vidcls.engine.runtime import autocast_context

__all__ = ["DynamicBatcher", "QueueFull", "predict_views"]


class QueueFull(RuntimeError):
    """More requests are waiting for a model than the server accepts (answered with 503)."""


class DynamicBatcher:
    """Groups concurrent :meth:`submit` calls into calls of ``run_batch(items) -> results``
    (one result per item, same order), run on ``executor``.

    ``on_batch(size)`` and ``on_queue(depth)`` report batch sizes and the queue depth (metrics).
    Lives on one event loop: :meth:`start` it there, :meth:`close` it before the loop ends.
    """

    def __init__(self, run_batch: Callable[[list], Sequence], executor: Executor, *,
                 max_batch: int = 8, max_wait_ms: float = 10.0, max_queue: int = 256,
                 on_batch: Callable[[int], None] | None = None,
                 on_queue: Callable[[int], None] | None = None):
        if max_batch < 1:
            raise ValueError(f"max_batch must be >= 1 (1 = no batching), got {max_batch}")
        if max_wait_ms < 0:
            raise ValueError(f"max_wait_ms must be >= 0, got {max_wait_ms}")
        self.run_batch, self.executor = run_batch, executor
        self.max_batch, self.max_wait = int(max_batch), max_wait_ms / 1e3
        self.max_queue = int(max_queue)
        self._on_batch = on_batch or (lambda size: None)
        self._on_queue = on_queue or (lambda depth: None)
        self._pending: collections.deque[tuple[Any, asyncio.Future]] = collections.deque()
        self._wakeup: asyncio.Event | None = None
        self._task: asyncio.Task | None = None

    def start(self) -> None:
        self._wakeup = asyncio.Event()
        self._task = asyncio.get_running_loop().create_task(self._serve(), name="vidcls-batcher")

    async def submit(self, item: Any) -> Any:
        """Queue ``item``; returns its result (or raises its batch's exception)."""
        if self._task is None or self._task.done():
            raise RuntimeError("the batcher is not running (start() it on the server's loop)")
        if len(self._pending) >= self.max_queue:
            raise QueueFull(f"{len(self._pending)} requests are already waiting for this model; "
                            f"retry later")
        future = asyncio.get_running_loop().create_future()
        self._pending.append((item, future))
        self._on_queue(len(self._pending))
        self._wakeup.set()
        return await future

    async def _next_batch(self) -> list[tuple[Any, asyncio.Future]]:
        while not self._pending:
            self._wakeup.clear()
            await self._wakeup.wait()
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.max_wait
        while len(self._pending) < self.max_batch:
            remaining = deadline - loop.time()
            if remaining <= 0:
                break
            self._wakeup.clear()
            try:  # the state is in the deque: a wait lost to the timeout loses nothing
                await asyncio.wait_for(self._wakeup.wait(), remaining)
            except asyncio.TimeoutError:
                break
        take = min(self.max_batch, len(self._pending))
        batch = [self._pending.popleft() for _ in range(take)]
        self._on_queue(len(self._pending))
        return [(item, f) for item, f in batch if not f.done()]  # done: the client gave up

    async def _serve(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            batch = await self._next_batch()
            if not batch:
                continue
            self._on_batch(len(batch))
            try:
                results = await loop.run_in_executor(self.executor, self.run_batch,
                                                     [item for item, _ in batch])
            except Exception as err:  # noqa: BLE001 (handed to every waiting request)
                for _, future in batch:
                    if not future.done():
                        future.set_exception(err)
                continue
            for (_, future), result in zip(batch, results):
                if not future.done():
                    future.set_result(result)

    async def close(self) -> None:
        """Stop; requests still queued get ``RuntimeError("server shutting down")``."""
        if self._task is not None:
            self._task.cancel()
            try:
                await self._task
            except asyncio.CancelledError:
                pass
        while self._pending:
            _, future = self._pending.popleft()
            if not future.done():
                future.set_exception(RuntimeError("the server is shutting down"))
        self._on_queue(0)


@torch.no_grad()
def predict_views(model: nn.Module, clips: list[torch.Tensor], *, mean: torch.Tensor,
                  std: torch.Tensor, device: torch.device, precision: str = "fp32",
                  multi_label: bool = False) -> list[torch.Tensor]:
    """Class probabilities ``(K,)`` of each clip, in one forward pass.

    ``clips``: uint8 ``(T, 3, H, W)`` (one view) or ``(V, T, 3, H, W)`` (V views) each, all of
    one model's input size. Each clip's views are averaged as in ``forward_views`` (softmax,
    or sigmoid for a multi-label model), so batching changes no prediction.
    """
    views = [c if c.dim() == 5 else c.unsqueeze(0) for c in clips]  # each (V_i, T, 3, H, W)
    counts = [v.shape[0] for v in views]
    x = normalize(torch.cat(views).to(device), mean, std)  # (sum V_i, T, 3, H, W) float
    with autocast_context(device, precision):
        logits = model(x)  # (sum V_i, K)
    # per clip: (V_i, K) -> (1, V_i, K) -> view-averaged probabilities (K,)
    return [average_views(part[None], multi_label=multi_label)[0].cpu()
            for part in logits.float().split(counts)]
