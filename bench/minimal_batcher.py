"""The simplest batcher that works, as a baseline: one asyncio queue, batches of up to 32
texts or 5 ms, one worker thread running the model, FastAPI on uvicorn. Run as
``python -m bench.minimal_batcher MODEL_DIR PORT TORCH_THREADS``; POST /classify
{"text": ...} answers the labels' scores.
"""

from __future__ import annotations

import asyncio
import sys
from collections.abc import AsyncIterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import asynccontextmanager

import uvicorn
from fastapi import FastAPI
from pydantic import BaseModel

from services.classifier.model import SequenceClassifier
from services.runtime.torch_setup import configure_torch

MAX_BATCH = 32
MAX_WAIT_S = 0.005


class Text(BaseModel):
    text: str


def make_app(model_dir: str) -> FastAPI:
    worker = ThreadPoolExecutor(max_workers=1)
    # Loaded and warmed on the thread that runs it: warmed on another thread, its passes
    # on two torch threads measured 1.2-1.8 times slower here (one text 10-13 ms against
    # 6-7), which would handicap the baseline.
    classifier = worker.submit(SequenceClassifier, model_dir).result()
    worker.submit(classifier.warm_up).result()
    queue: asyncio.Queue[tuple[str, asyncio.Future[object]]] = asyncio.Queue()

    async def batch_forever() -> None:
        loop = asyncio.get_running_loop()
        while True:
            batch = [await queue.get()]
            deadline = loop.time() + MAX_WAIT_S
            while len(batch) < MAX_BATCH and (left := deadline - loop.time()) > 0:
                try:
                    batch.append(await asyncio.wait_for(queue.get(), left))
                except TimeoutError:
                    break
            texts = [text for text, _ in batch]
            results = await loop.run_in_executor(worker, classifier.predict_batch, texts)
            for (_, future), result in zip(batch, results, strict=True):
                future.set_result([{"label": s.label, "score": s.score} for s in result])

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        task = asyncio.create_task(batch_forever())
        yield
        task.cancel()

    app = FastAPI(lifespan=lifespan)

    @app.post("/classify")
    async def classify(body: Text) -> object:
        future: asyncio.Future[object] = asyncio.get_running_loop().create_future()
        await queue.put((body.text, future))
        return await future

    return app


if __name__ == "__main__":
    model_dir, port, threads = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
    configure_torch(threads)
    uvicorn.run(make_app(model_dir), host="127.0.0.1", port=port, log_level="warning")
