"""The API reference pages, ``/docs`` (Swagger UI) and ``/redoc`` (ReDoc), rendered with
no internet: their scripts and styles come from the ``fastapi-offline`` package (which
ships Swagger UI's and ReDoc's release bundles) and are served by the gateway itself
under ``/docs-assets``, instead of from the CDN FastAPI's pages load them from.

The pages are FastAPI's own (``get_swagger_ui_html``, ``get_redoc_html``). Each page's
Content-Security-Policy allows this gateway ('self') and the page's own inline parts, so
the page can neither load nor send anything elsewhere: Swagger UI's inline starting
script by its SHA-256 hash; for ReDoc, inline styles (it makes them at run time) and a
worker from a ``blob:`` URL.
"""

from __future__ import annotations

import base64
import hashlib
import re
from importlib.resources import files
from pathlib import Path

from fastapi import APIRouter, FastAPI, Request
from fastapi.openapi.docs import get_redoc_html, get_swagger_ui_html
from fastapi.responses import HTMLResponse
from fastapi.staticfiles import StaticFiles

DOCS_ASSETS_URL = "/docs-assets"

DOCS_ASSETS_DIR = Path(str(files("fastapi_offline") / "static"))
"""swagger-ui-bundle.js, swagger-ui.css, redoc.standalone.js and favicon.png."""

_INLINE = re.compile(r"<(script|style)>(.*?)</\1>", re.DOTALL)

SWAGGER_PARAMETERS = {"validatorUrl": None}
"""No validator badge: it would send the document to swagger.io to be checked."""

# ReDoc's styles are injected at run time (styled-components), which no hash can name,
# and it runs its search index in a worker made from a blob: URL.
REDOC_EXTRA = {"style-src": "'unsafe-inline'", "worker-src": "blob:"}

router = APIRouter(include_in_schema=False)


def page_policy(html: str, extra: dict[str, str] | None = None) -> str:
    """A Content-Security-Policy for ``html``: its own origin, the page's inline scripts
    and styles by hash, and ``extra`` sources per directive (which replace the hashes:
    a browser ignores 'unsafe-inline' in a directive that names a hash)."""
    sources: dict[str, list[str]] = {"script-src": ["'self'"], "style-src": ["'self'"]}
    for tag, body in _INLINE.findall(html):
        digest = base64.b64encode(hashlib.sha256(body.encode()).digest()).decode()
        sources[f"{tag}-src"].append(f"'sha256-{digest}'")
    for directive, source in (extra or {}).items():
        sources[directive] = ["'self'", source]
    shown = " ".join(f"{name} {' '.join(values)};" for name, values in sources.items())
    return (
        f"default-src 'self'; {shown} img-src 'self' data:; connect-src 'self';"
        " frame-ancestors 'none'; base-uri 'none'; form-action 'none'"
    )


def _answer(html: str, extra: dict[str, str] | None = None) -> HTMLResponse:
    return HTMLResponse(
        html,
        headers={"Content-Security-Policy": page_policy(html, extra), "Cache-Control": "no-cache"},
    )


def _openapi_url(request: Request) -> str:
    return f"{request.scope.get('root_path', '')}{request.app.openapi_url}"


@router.api_route("/docs", methods=["GET", "HEAD"])
async def swagger_ui(request: Request) -> HTMLResponse:
    assets = f"{request.scope.get('root_path', '')}{DOCS_ASSETS_URL}"
    page = get_swagger_ui_html(
        openapi_url=_openapi_url(request),
        title=f"{request.app.title} - Swagger UI",
        swagger_js_url=f"{assets}/swagger-ui-bundle.js",
        swagger_css_url=f"{assets}/swagger-ui.css",
        swagger_favicon_url=f"{assets}/favicon.png",
        swagger_ui_parameters=SWAGGER_PARAMETERS,
    )
    return _answer(bytes(page.body).decode())


@router.api_route("/redoc", methods=["GET", "HEAD"])
async def redoc(request: Request) -> HTMLResponse:
    assets = f"{request.scope.get('root_path', '')}{DOCS_ASSETS_URL}"
    page = get_redoc_html(
        openapi_url=_openapi_url(request),
        title=f"{request.app.title} - ReDoc",
        redoc_js_url=f"{assets}/redoc.standalone.js",
        redoc_favicon_url=f"{assets}/favicon.png",
        with_google_fonts=False,
    )
    return _answer(bytes(page.body).decode(), REDOC_EXTRA)


def install_docs(app: FastAPI) -> None:
    """Serve the two reference pages and their assets."""
    app.include_router(router)
    app.mount(DOCS_ASSETS_URL, StaticFiles(directory=DOCS_ASSETS_DIR), name="docs-assets")
