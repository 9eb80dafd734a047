"""Stopping a call's work when its HTTP client goes away.

Starlette does not cancel a handler whose client disconnects: an abandoned unary call
would keep a model busy until it ends (a summary, up to its token limit). A handler that
has read its body awaits its call through ``unless_client_leaves``, which watches the
connection for ``http.disconnect`` meanwhile and cancels the call when it comes.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable
from typing import TypeVar

from starlette.requests import Request

from gateway.errors.refusals import ClientClosedRequest

T = TypeVar("T")


async def _disconnected(request: Request) -> None:
    # The body was read: the next message on the connection can only be the disconnect.
    while (await request.receive())["type"] != "http.disconnect":
        pass


async def unless_client_leaves(request: Request, call: Awaitable[T]) -> T:
    """``await call``, cancelled (and ``ClientClosedRequest`` raised) if the client
    disconnects first. Call it only once the request's body has been read."""
    work = asyncio.ensure_future(call)
    watch = asyncio.ensure_future(_disconnected(request))
    try:
        await asyncio.wait((work, watch), return_when=asyncio.FIRST_COMPLETED)
    finally:
        if not work.done():
            work.cancel()
        watch.cancel()
    if work.cancelled():
        raise ClientClosedRequest("the client closed the connection before the answer")
    return work.result()
