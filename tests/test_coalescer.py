"""The gateway's sharing of backend calls (``gateway.backends.coalescer``), driven by a
``send`` whose calls the test answers one by one: which requests a call carries, in what
order, and what each request gets when a call fails, its deadline passes or it leaves.
The same sharing through the gateway to a real gRPC backend is in
``test_gateway_coalescing.py``."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field

import grpc
import pytest
from grpc import aio

from gateway.backends.coalescer import Coalescer, Metadata

KEY = ("Classify", "sentiment", "v1")


@dataclass
class Call:
    texts: list[str]
    timeout_s: float
    metadata: Metadata
    answer: asyncio.Future[list[str]]
    cancelled: bool = False


@dataclass
class Backend:
    """Every call ``send`` made, each waiting until the test answers it."""

    calls: list[Call] = field(default_factory=list)

    async def send(self, texts: list[str], timeout_s: float, metadata: Metadata) -> list[str]:
        call = Call(texts, timeout_s, metadata, asyncio.get_running_loop().create_future())
        self.calls.append(call)
        try:
            return await call.answer
        except asyncio.CancelledError:
            call.cancelled = True
            raise

    def answer(self, number: int) -> None:
        """Answer call ``number``: each text's result is the text upper-cased."""
        call = self.calls[number]
        call.answer.set_result([text.upper() for text in call.texts])

    def fail(self, number: int, code: grpc.StatusCode) -> None:
        error = aio.AioRpcError(code, aio.Metadata(), aio.Metadata(), "scripted", None)
        self.calls[number].answer.set_exception(error)


async def until(condition: Callable[[], bool]) -> None:
    """Let the event loop run until ``condition`` holds (every party is in this loop)."""
    for _ in range(1000):
        if condition():
            return
        await asyncio.sleep(0)
    raise AssertionError("the condition never held")


def request(
    coalescer: Coalescer,
    backend: Backend,
    texts: Sequence[str],
    timeout_s: float = 60.0,
    metadata: Metadata = (),
    joined: Callable[[Metadata], None] | None = None,
) -> asyncio.Task[list[str]]:
    send: Callable[[list[str], float, Metadata], Awaitable[Sequence[str]]] = backend.send
    return asyncio.ensure_future(coalescer.call(KEY, texts, timeout_s, metadata, send, joined))


async def in_one_call(
    backend: Backend, texts: Sequence[str]
) -> tuple[Coalescer, list[asyncio.Task[list[str]]]]:
    """Requests of one text each, made while another call runs (one call at a time), so
    that they wait and then share call 1, which is sent but not answered yet."""
    coalescer = Coalescer(max_in_flight=1, max_texts=32)
    first = request(coalescer, backend, ["a"])
    await until(lambda: len(backend.calls) == 1)
    shared = [request(coalescer, backend, [text]) for text in texts]
    await until(lambda: coalescer.waiting() == len(texts))
    backend.answer(0)
    await first
    await until(lambda: len(backend.calls) == 2)
    return coalescer, shared


async def test_requests_that_wait_share_the_next_call_each_getting_its_own_results() -> None:
    carried: list[int] = []
    backend, coalescer = Backend(), Coalescer(max_in_flight=1, max_texts=32, observe=carried.append)
    first = request(coalescer, backend, ["a"], metadata=(("x-request-id", "first"),))
    await until(lambda: len(backend.calls) == 1)
    told: dict[str, Metadata] = {}
    second = request(
        coalescer,
        backend,
        ["b1", "b2"],
        metadata=(("x-request-id", "second"),),
        joined=lambda carrier: told.update(second=carrier),
    )
    third = request(
        coalescer,
        backend,
        ["c"],
        metadata=(("x-request-id", "third"),),
        joined=lambda carrier: told.update(third=carrier),
    )
    await until(lambda: coalescer.waiting() == 2)
    assert len(backend.calls) == 1  # they wait for the call in flight

    backend.answer(0)
    assert await first == ["A"]
    await until(lambda: len(backend.calls) == 2)
    shared = backend.calls[1]
    assert shared.texts == ["b1", "b2", "c"]
    assert shared.metadata == (("x-request-id", "second"),)  # the first request's in it
    assert told == {"third": (("x-request-id", "second"),)}  # told whose call carries it
    backend.answer(1)
    assert await second == ["B1", "B2"]
    assert await third == ["C"]
    assert coalescer.waiting() == 0
    assert carried == [1, 2]  # requests per call, as the gateway's metrics count them


async def test_a_request_that_finds_a_free_call_goes_at_once() -> None:
    backend, coalescer = Backend(), Coalescer(max_in_flight=2, max_texts=32)
    tasks = [request(coalescer, backend, [text]) for text in ("a", "b")]
    await until(lambda: len(backend.calls) == 2)
    assert [call.texts for call in backend.calls] == [["a"], ["b"]]
    backend.answer(1)
    backend.answer(0)
    assert [await task for task in tasks] == [["A"], ["B"]]


async def test_without_sharing_every_request_is_a_call_of_its_own() -> None:
    backend, coalescer = Backend(), Coalescer(max_in_flight=0, max_texts=32)
    tasks = [request(coalescer, backend, [text]) for text in ("a", "b", "c")]
    await until(lambda: len(backend.calls) == 3)
    for number in range(3):
        backend.answer(number)
    assert [await task for task in tasks] == [["A"], ["B"], ["C"]]


async def test_a_shared_call_carries_at_most_max_texts() -> None:
    backend, coalescer = Backend(), Coalescer(max_in_flight=1, max_texts=3)
    first = request(coalescer, backend, ["a"])
    await until(lambda: len(backend.calls) == 1)
    waiting = [request(coalescer, backend, [f"{n}x", f"{n}y"]) for n in range(2)]
    await until(lambda: coalescer.waiting() == 2)
    backend.answer(0)
    await until(lambda: len(backend.calls) == 2)
    assert backend.calls[1].texts == ["0x", "0y"]  # the next request's would make 4
    backend.answer(1)
    await until(lambda: len(backend.calls) == 3)
    assert backend.calls[2].texts == ["1x", "1y"]
    backend.answer(2)
    assert await first == ["A"]
    assert [await task for task in waiting] == [["0X", "0Y"], ["1X", "1Y"]]


async def test_a_request_whose_deadline_passes_while_it_waits_is_told_so_and_not_sent() -> None:
    backend, coalescer = Backend(), Coalescer(max_in_flight=1, max_texts=32)
    first = request(coalescer, backend, ["a"])
    await until(lambda: len(backend.calls) == 1)
    late = request(coalescer, backend, ["b"], timeout_s=0.01)
    with pytest.raises(aio.AioRpcError) as failure:
        await late
    assert failure.value.code() is grpc.StatusCode.DEADLINE_EXCEEDED
    backend.answer(0)
    assert await first == ["A"]
    await until(lambda: coalescer.waiting() == 0)
    assert len(backend.calls) == 1


async def test_a_request_that_leaves_while_it_waits_is_not_sent() -> None:
    backend, coalescer = Backend(), Coalescer(max_in_flight=1, max_texts=32)
    first = request(coalescer, backend, ["a"])
    await until(lambda: len(backend.calls) == 1)
    leaving = request(coalescer, backend, ["b"])
    staying = request(coalescer, backend, ["c"])
    await until(lambda: coalescer.waiting() == 2)
    leaving.cancel()
    await until(lambda: leaving.done())
    assert coalescer.waiting() == 1
    backend.answer(0)
    await until(lambda: len(backend.calls) == 2)
    assert backend.calls[1].texts == ["c"]
    backend.answer(1)
    assert await first == ["A"]
    assert await staying == ["C"]
    assert leaving.cancelled()


async def test_a_shared_call_is_cancelled_once_every_request_in_it_has_left() -> None:
    backend = Backend()
    coalescer, shared = await in_one_call(backend, ["b", "c"])
    shared[0].cancel()
    await until(lambda: shared[0].done())
    assert not backend.calls[1].cancelled  # "c" still waits for it
    shared[1].cancel()
    await until(lambda: backend.calls[1].cancelled)
    await until(lambda: coalescer.waiting() == 0)
    # The lane is free again: the next request goes at once.
    after = request(coalescer, backend, ["d"])
    await until(lambda: len(backend.calls) == 3)
    backend.answer(2)
    assert await after == ["D"]


async def test_an_invalid_argument_of_a_shared_call_is_answered_request_by_request() -> None:
    backend = Backend()
    _, (good, bad) = await in_one_call(backend, ["fine", "too long"])
    backend.fail(1, grpc.StatusCode.INVALID_ARGUMENT)
    await until(lambda: len(backend.calls) == 4)  # each sent again, alone
    assert sorted(call.texts[0] for call in backend.calls[2:]) == ["fine", "too long"]
    for number in (2, 3):
        if backend.calls[number].texts == ["fine"]:
            backend.answer(number)
        else:
            backend.fail(number, grpc.StatusCode.INVALID_ARGUMENT)
    assert await good == ["FINE"]
    with pytest.raises(aio.AioRpcError) as failure:
        await bad
    assert failure.value.code() is grpc.StatusCode.INVALID_ARGUMENT


async def test_any_other_failure_of_a_shared_call_is_every_requests() -> None:
    backend = Backend()
    _, shared = await in_one_call(backend, ["b", "c"])
    backend.fail(1, grpc.StatusCode.RESOURCE_EXHAUSTED)
    for task in shared:
        with pytest.raises(aio.AioRpcError) as failure:
            await task
        assert failure.value.code() is grpc.StatusCode.RESOURCE_EXHAUSTED
    assert len(backend.calls) == 2


async def test_a_shared_call_that_fails_without_a_status_fails_each_request_alike() -> None:
    backend = Backend()
    _, shared = await in_one_call(backend, ["b", "c"])
    backend.calls[1].answer.set_exception(RuntimeError("the channel broke"))
    for task in shared:
        with pytest.raises(RuntimeError, match="the channel broke"):
            await task
