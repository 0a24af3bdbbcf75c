"""/docs (Swagger UI) and /redoc, with their assets served by the head-end
from the npm packages (no CDN: a site without internet reads them too)."""
import functools
import os

from fastapi import APIRouter, Request
from fastapi.openapi.docs import get_redoc_html, get_swagger_ui_html, get_swagger_ui_oauth2_redirect_html
from fastapi.responses import Response

from ..api.deps import public

router = APIRouter(include_in_schema=False)
# the one outside address ReDoc's bundle loads (its "powered by" logo)
REDOC_CDN_LOGO = "https://cdn.redoc.ly/redoc/logo-mini.svg"


@functools.lru_cache(maxsize=2)
def _redoc_bundle(node_modules):
    with open(os.path.join(node_modules, "redoc", "bundles", "redoc.standalone.js"), "rb") as f:
        return f.read().replace(REDOC_CDN_LOGO.encode(), b"/static/favicon.svg")


@router.get("/docs/redoc.standalone.js", dependencies=[public()])
def redoc_js(request: Request):
    """ReDoc's bundle from the npm package, with its logo served from here."""
    return Response(_redoc_bundle(request.app.state.settings.node_modules), media_type="application/javascript",
                    headers={"Cache-Control": "max-age=86400"})


@router.get("/docs", dependencies=[public()])
def swagger(request: Request):
    return get_swagger_ui_html(openapi_url="/openapi.json", title=request.app.title + " — API",
                               oauth2_redirect_url="/docs/oauth2-redirect",
                               swagger_js_url="/vendor/swagger-ui/swagger-ui-bundle.js",
                               swagger_css_url="/vendor/swagger-ui/swagger-ui.css",
                               swagger_favicon_url="/static/favicon.svg")


@router.get("/docs/oauth2-redirect", dependencies=[public()])
def swagger_redirect():
    return get_swagger_ui_oauth2_redirect_html()


@router.get("/redoc", dependencies=[public()])
def redoc(request: Request):
    return get_redoc_html(openapi_url="/openapi.json", title=request.app.title + " — API",
                          redoc_js_url="/docs/redoc.standalone.js",
                          redoc_favicon_url="/static/favicon.svg", with_google_fonts=False)
