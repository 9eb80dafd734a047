"""The browser pages, plain HTML, CSS and JavaScript with no build step: ``/`` to try the
models, ``/operator`` for the operators' dashboard."""

from __future__ import annotations

from pathlib import Path

from fastapi import APIRouter
from fastapi.responses import FileResponse

STATIC_DIR = Path(__file__).resolve().parents[1] / "static"

# The page loads only its own files and talks only to this gateway.
PAGE_POLICY = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:;"
    " connect-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'none'"
)

router = APIRouter(include_in_schema=False)


@router.api_route("/", methods=["GET", "HEAD"])
async def page() -> FileResponse:
    return FileResponse(
        STATIC_DIR / "index.html",
        headers={"Content-Security-Policy": PAGE_POLICY, "Cache-Control": "no-cache"},
    )


@router.api_route("/operator", methods=["GET", "HEAD"])
async def operator_page() -> FileResponse:
    # Served to anyone: the page holds no data; every call it makes needs an operator key.
    return FileResponse(
        STATIC_DIR / "operator.html",
        headers={"Content-Security-Policy": PAGE_POLICY, "Cache-Control": "no-cache"},
    )
