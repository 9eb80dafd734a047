"""The server interceptor that turns service errors into gRPC statuses and counts calls.

Only Switchyard's own services pass through it; health and reflection are left as they are.
"""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import grpc
from google.protobuf.message import DecodeError
from grpc import aio

from services.runtime import tracing
from services.runtime.errors import InvalidInput, ServiceError, Unavailable
from services.runtime.metrics import CallRecord, ServiceMetrics, current_call
from services.runtime.status import (
    GENERIC_INTERNAL_MESSAGE,
    status_code_for,
    trailing_metadata_for,
)
from switchyard import logs

log = logging.getLogger(__name__)

REQUEST_ID_KEY = "x-request-id"

OWN_PREFIX = "/switchyard."

Handler = Callable[..., Any]


class ErrorMappingInterceptor(aio.ServerInterceptor):  # type: ignore[type-arg]
    """Maps ``ServiceError`` to its status, anything else to a generic INTERNAL, and
    records each call's status and latency per model version."""

    def __init__(self, metrics: ServiceMetrics) -> None:
        self._metrics = metrics
        self._active = 0
        self._idle = asyncio.Event()
        self._idle.set()
        self._refusing = False
        self._wrapped: dict[str, Any] = {}  # full method path -> wrapped handler

    def refuse_new_calls(self) -> None:
        """From now on, answer new calls with UNAVAILABLE (the process is draining)."""
        self._refusing = True

    async def wait_idle(self) -> None:
        """Return once no call to Switchyard's own services is running."""
        await self._idle.wait()

    def _call_started(self) -> None:
        self._active += 1
        self._idle.clear()

    def _admit(self) -> None:
        if self._refusing:
            raise Unavailable("the service is draining; retry on another replica")

    def _call_ended(self) -> None:
        self._active -= 1
        if self._active == 0:
            self._idle.set()

    async def intercept_service(
        self,
        continuation: Callable[[grpc.HandlerCallDetails], Awaitable[Any]],
        handler_call_details: grpc.HandlerCallDetails,
    ) -> Any:
        method: str = handler_call_details.method
        # A method's handler never changes once the server runs, so each is wrapped once:
        # wrapping on every call cost about a tenth of a millisecond of the event loop's
        # time per call.
        wrapped = self._wrapped.get(method)
        if wrapped is not None:
            return wrapped
        handler = await continuation(handler_call_details)
        if handler is None or not method.startswith(OWN_PREFIX):
            return handler
        wrapped = self._wrap(handler, method)
        self._wrapped[method] = wrapped
        return wrapped

    def _wrap(self, handler: Any, method: str) -> Any:
        # Requests reach the wrapped behaviour as bytes and are parsed there: grpcio's own
        # parsing failure (for example a string field holding invalid UTF-8) would answer
        # UNKNOWN with the exception's text; parsed here it is a clear INVALID_ARGUMENT.
        decode = _decoder(handler.request_deserializer)
        kwargs = {"request_deserializer": None, "response_serializer": handler.response_serializer}
        if handler.unary_unary:
            return grpc.unary_unary_rpc_method_handler(
                self._wrap_unary(_unary_input(handler.unary_unary, decode), method), **kwargs
            )
        if handler.stream_unary:
            return grpc.stream_unary_rpc_method_handler(
                self._wrap_unary(_stream_input(handler.stream_unary, decode), method), **kwargs
            )
        if handler.unary_stream:
            return grpc.unary_stream_rpc_method_handler(
                self._wrap_stream(_unary_input(handler.unary_stream, decode), method), **kwargs
            )
        return grpc.stream_stream_rpc_method_handler(
            self._wrap_stream(_stream_input(handler.stream_stream, decode), method), **kwargs
        )

    def _wrap_unary(self, inner: Handler, method: str) -> Handler:
        short = method.rsplit("/", 1)[-1]

        # Written out rather than through ``_call``: a unary call is the hot path, and an
        # async context manager's generator costs it several steps of the event loop.
        async def behavior(request: Any, context: aio.ServicerContext[Any, Any]) -> Any:
            record, started = self._begin(context)
            code = "OK"
            with tracing.rpc_span(method, context.invocation_metadata) as span:
                try:
                    self._admit()
                    return await inner(request, context)
                except BaseException as exc:
                    code = _code_name(exc, context)
                    await _abort_for(exc, context, short)
                    raise
                finally:
                    self._end(short, record, code, started, span)

        return behavior

    def _wrap_stream(self, inner: Handler, method: str) -> Handler:
        async def behavior(
            request: Any, context: aio.ServicerContext[Any, Any]
        ) -> AsyncIterator[Any]:
            async with self._call(method, context):
                responses = inner(request, context)
                if inspect.isasyncgen(responses):
                    # Closed here, not whenever the collector finds it: its clean-up
                    # cancels work and frees queue slots.
                    async with contextlib.aclosing(responses):
                        async for response in responses:
                            yield response
                else:
                    await responses

        return behavior

    def _begin(self, context: aio.ServicerContext[Any, Any]) -> tuple[CallRecord, float]:
        """Start one call's bookkeeping: its metrics record, request id and active count."""
        record = CallRecord()
        # Each RPC runs in its own task, so the record is seen only by this call.
        current_call.set(record)
        logs.request_id.set(_request_id(context))
        self._call_started()
        return record, time.perf_counter()

    def _end(self, short: str, record: CallRecord, code: str, started: float, span: Any) -> None:
        self._call_ended()
        self._metrics.observe_call(short, record, code, time.perf_counter() - started)
        tracing.end_rpc(span, code)

    @contextlib.asynccontextmanager
    async def _call(
        self, method: str, context: aio.ServicerContext[Any, Any]
    ) -> AsyncIterator[None]:
        """One streaming call's bookkeeping: admission, error mapping, active count,
        metrics and its span (``method``: the full gRPC path)."""
        short = method.rsplit("/", 1)[-1]
        record, started = self._begin(context)
        code = "OK"
        with tracing.rpc_span(method, context.invocation_metadata) as span:
            try:
                self._admit()
                yield
            except BaseException as exc:
                code = _code_name(exc, context)
                await _abort_for(exc, context, short)
                raise
            finally:
                self._end(short, record, code, started, span)


def _request_id(context: aio.ServicerContext[Any, Any]) -> str:
    """The caller's request id (the gateway's ``x-request-id`` metadata), for the logs."""
    for key, value in context.invocation_metadata() or ():
        if key == REQUEST_ID_KEY:
            return str(value)
    return ""


def _decoder(deserialize: Callable[[bytes], Any] | None) -> Callable[[bytes], Any]:
    if deserialize is None:
        return lambda raw: raw
    message_type = getattr(getattr(deserialize, "__self__", None), "DESCRIPTOR", None)
    type_name = getattr(message_type, "full_name", "request message")

    def decode(raw: bytes) -> Any:
        try:
            return deserialize(raw)
        except DecodeError:
            raise InvalidInput(
                f"the request is not a valid {type_name}: it could not be parsed"
                " (string fields must hold valid UTF-8)"
            ) from None

    return decode


def _unary_input(inner: Handler, decode: Callable[[bytes], Any]) -> Handler:
    def call(raw: bytes, context: aio.ServicerContext[Any, Any]) -> Any:
        return inner(decode(raw), context)

    return call


def _stream_input(inner: Handler, decode: Callable[[bytes], Any]) -> Handler:
    async def decoded(raw_requests: AsyncIterator[bytes]) -> AsyncIterator[Any]:
        async for raw in raw_requests:
            yield decode(raw)

    def call(raw_requests: AsyncIterator[bytes], context: aio.ServicerContext[Any, Any]) -> Any:
        return inner(decoded(raw_requests), context)

    return call


def _code_name(exc: BaseException, context: aio.ServicerContext[Any, Any]) -> str:
    if isinstance(exc, aio.AbortError):
        code = context.code()
        return code.name if isinstance(code, grpc.StatusCode) else "UNKNOWN"
    if isinstance(exc, ServiceError):
        return status_code_for(exc).name
    if isinstance(exc, Exception):
        return grpc.StatusCode.INTERNAL.name
    return grpc.StatusCode.CANCELLED.name  # the task was cancelled: the client went away


async def _abort_for(
    exc: BaseException, context: aio.ServicerContext[Any, Any], method: str
) -> None:
    """Abort the call with the status that answers ``exc``; returns only for exceptions
    that already carry a status (an abort) or that are not errors (cancellation)."""
    if isinstance(exc, aio.AbortError) or not isinstance(exc, Exception):
        return
    if isinstance(exc, ServiceError):
        await context.abort(status_code_for(exc), exc.message, trailing_metadata_for(exc))
    log.error("unexpected error in %s", method, exc_info=exc)
    await context.abort(grpc.StatusCode.INTERNAL, GENERIC_INTERNAL_MESSAGE)
