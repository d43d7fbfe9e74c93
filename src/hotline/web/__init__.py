"""The screens (agent desktop, wallboard), built from ``web/`` by Vite into ``static/`` and
served at ``/`` by the same server as the API, so they need no other web server."""

from __future__ import annotations

from pathlib import Path

from fastapi import FastAPI
from fastapi.responses import HTMLResponse
from fastapi.staticfiles import StaticFiles

STATIC = Path(__file__).resolve().parent / "static"

_NOT_BUILT = """<!doctype html><meta charset="utf-8"><title>Hotline</title>
<p>The web screens are not built: <code>make demo</code> builds them (Node.js and npm from
Debian), or <code>cd web &amp;&amp; npm ci &amp;&amp; npm run build</code>.
The API is at <a href="/api/v1/docs">/api/v1/docs</a>.</p>"""


def mount(app: FastAPI) -> None:
    """Serve the built screens at ``/`` (after the API's routes, which take precedence)."""
    if (STATIC / "index.html").is_file():
        app.mount("/", StaticFiles(directory=STATIC, html=True), name="web")
        return

    @app.get("/", include_in_schema=False)
    def not_built() -> HTMLResponse:
        return HTMLResponse(_NOT_BUILT, status_code=503)
