"""Domain errors -> HTTP answers: NotFound 404, Conflict 409, Invalid 422,
Forbidden 403, Unauthorized 401 (with WWW-Authenticate), Locked 423. A
dashboard page without a session redirects to /login. A request that fails
validation gets 422 with where and why, without echoing the input back (it
may be large, or text that is not even Unicode)."""
import json
import logging
from urllib.parse import quote

from fastapi import Request
from fastapi.encoders import jsonable_encoder
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, RedirectResponse

from ..services.errors import DomainError, Locked, Unauthorized
from .deps import LoginRequired

log = logging.getLogger("headend.api")


def _domain_error(request: Request, exc: DomainError):
    if isinstance(exc, LoginRequired):
        target = "/login?next=" + quote(request.url.path)
        if request.headers.get("hx-request"):
            return JSONResponse({"detail": exc.message}, status_code=401, headers={"HX-Redirect": target})
        return RedirectResponse(target, status_code=303)
    headers = {}
    status = exc.status
    if isinstance(exc, Locked):
        status = 423
    elif isinstance(exc, Unauthorized):
        headers["WWW-Authenticate"] = "Bearer"
    return JSONResponse({"detail": exc.message}, status_code=status, headers=headers)


class AsciiJSONResponse(JSONResponse):
    """JSON with every non-ASCII character escaped: renders whatever a client sent."""

    def render(self, content):
        return json.dumps(content, ensure_ascii=True, allow_nan=False, separators=(",", ":")).encode("ascii")


def _invalid_request(request: Request, exc: RequestValidationError):
    errors = [{k: v for k, v in e.items() if k in ("type", "loc", "msg")} for e in exc.errors()]
    return AsciiJSONResponse({"detail": jsonable_encoder(errors)}, status_code=422)


def _unexpected(request: Request, exc: Exception):
    log.exception("unhandled error on %s %s", request.method, request.url.path)
    return JSONResponse({"detail": "internal error"}, status_code=500)


def install(app):
    app.add_exception_handler(DomainError, _domain_error)
    app.add_exception_handler(RequestValidationError, _invalid_request)
