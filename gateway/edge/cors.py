"""Cross-origin calls from browser pages served elsewhere: which origins may call, with
which methods and headers, and which answer headers their scripts may read.

Starlette's ``CORSMiddleware`` decides; this subclass only changes how a refused
preflight is answered. Starlette answers it with a plain-text 400 ("Disallowed CORS
origin"), which no client of this API can parse; here it is a 403 in the gateway's error
envelope, saying what was refused, as every other refusal is. (A browser never shows a
script the body of a failed preflight; the envelope is for the person reading it in the
developer tools, and for clients such as curl that send a preflight by hand.)
"""

from __future__ import annotations

from collections.abc import Collection

from starlette.datastructures import Headers
from starlette.middleware.cors import CORSMiddleware
from starlette.responses import PlainTextResponse, Response
from starlette.types import ASGIApp

from gateway.errors.refusals import PermissionDenied, json_error

ALLOWED_METHODS = ("GET", "POST", "PUT", "DELETE", "OPTIONS", "HEAD")
"""Every method the API's routes answer."""

ALLOWED_HEADERS = (
    "Authorization",
    "X-API-Key",
    "Cache-Control",
    "Content-Type",
    "Last-Event-ID",
    "X-Model-Version",
    "X-Request-Timeout",
    "X-Request-ID",
    "traceparent",
    "tracestate",
)
"""Request headers the gateway reads: credentials, cache bypass, stream resumption, the
version pin, the time budget, the caller's request id and trace context."""

EXPOSED_HEADERS = (
    "RateLimit",
    "RateLimit-Policy",
    "X-RateLimit-Limit",
    "X-RateLimit-Remaining",
    "X-RateLimit-Reset",
    "Retry-After",
    "X-Should-Retry",
    "X-Request-ID",
    "X-Model-Version",
    "X-Route-Reason",
    "X-Cache",
    "Server-Timing",
    "Deprecation",
    "Sunset",
    "WWW-Authenticate",
)
"""Answer headers the gateway sets that a page's script may read (a browser lets it read
only the CORS-safelisted ones unless told): the limits left and when to retry, the
request id to quote, which version answered and why, the cache's verdict, the time spent,
a retired version's dates, and why a credential was refused."""


class EnvelopeCORSMiddleware(CORSMiddleware):
    """Starlette's CORS handling with refused preflights told in the error envelope.

    The preflight is judged here in full (rather than by the parent's method) so that the
    answer can name what was refused; the grant itself is the parent's headers."""

    def __init__(
        self,
        app: ASGIApp,
        allow_origins: Collection[str] = (),
        allow_origin_regex: str | None = None,
        allow_credentials: bool = False,
        max_age: int = 600,
    ) -> None:
        super().__init__(
            app,
            allow_origins=allow_origins,
            allow_methods=ALLOWED_METHODS,
            allow_headers=ALLOWED_HEADERS,
            allow_credentials=allow_credentials,
            allow_origin_regex=allow_origin_regex,
            expose_headers=EXPOSED_HEADERS,
            max_age=max_age,
        )

    def preflight_response(self, request_headers: Headers) -> Response:
        refused = self._refusals(request_headers)
        if not refused:
            granted = dict(self.preflight_headers)
            if self.preflight_explicit_allow_origin:
                granted["Access-Control-Allow-Origin"] = request_headers["origin"]
            return PlainTextResponse("OK", headers=granted)
        # Nothing is granted to a refused preflight; Vary keeps caches from reusing it.
        vary = {"Vary": self.preflight_headers["Vary"]}
        message = "CORS preflight refused: " + "; ".join(refused)
        return json_error(PermissionDenied.status, PermissionDenied.code, message, vary)

    def _refusals(self, request_headers: Headers) -> list[str]:
        """What the preflight asks for that is not allowed, each said in words."""
        refused: list[str] = []
        origin = request_headers["origin"]
        if not self.is_allowed_origin(origin=origin):
            refused.append(f"origin {origin!r} is not allowed")
        method = request_headers["access-control-request-method"]
        if method not in self.allow_methods:
            refused.append(
                f"method {method!r} is not allowed (allowed: {', '.join(ALLOWED_METHODS)})"
            )
        requested = request_headers.get("access-control-request-headers", "")
        names = [name.strip().lower() for name in requested.split(",") if name.strip()]
        unknown = [name for name in names if name not in self.allow_headers]
        if unknown:
            refused.append(
                f"request headers not allowed: {', '.join(unknown)}"
                f" (allowed: {', '.join(ALLOWED_HEADERS)})"
            )
        if request_headers.get("access-control-request-private-network") is not None:
            refused.append("private network access is not allowed")
        return refused
