"""Domain errors -> HTTP answers: NotFound 404, Conflict 409, Invalid 422,
Forbidden 403, Unauthorized 401 (with WWW-Authenticate), Locked 423. A
dashboard page without a session redirects to /login."""
import logging
from urllib.parse import quote

from fastapi import Request
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


def _unexpected(request: Request, exc: Exception):
    log.exception("unhandled error on %s %s", request.method, request.url.path)
    return JSONResponse({"detail": "internal error"}, status_code=500)


def install(app):
    app.add_exception_handler(DomainError, _domain_error)
