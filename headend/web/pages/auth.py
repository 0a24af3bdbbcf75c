"""Logging in and out of the dashboard, and the language switch."""
from typing import Annotated
from urllib.parse import urlsplit

from fastapi import APIRouter, Form, Path, Query, Request
from fastapi.responses import HTMLResponse, RedirectResponse

from ...api.deps import SESSION_COOKIE, SessionDep, SettingsDep, client_ip, public, require_web
from ...core import permissions as P
from ...services import auth as auth_service
from ...services.actor import Actor
from ...services.errors import Unauthorized
from .. import i18n
from ..render import page

router = APIRouter(include_in_schema=False)


def _safe_next(target):
    """Only our own pages (no open redirect)."""
    if not target or not target.startswith("/") or target.startswith("//"):
        return None
    u = urlsplit(target)
    return None if u.scheme or u.netloc else target


def home_of(actor):
    return "/portal" if actor.is_tenant else "/staff"


@router.get("/login", response_class=HTMLResponse, dependencies=[public()])
def login_page(request: Request, next: Annotated[str, Query(max_length=500)] = ""):
    return page(request, "login.html", {"next": _safe_next(next) or "", "error": None})


@router.post("/login", response_class=HTMLResponse, dependencies=[public()])
def login(request: Request, session: SessionDep, settings: SettingsDep,
          username: Annotated[str, Form(max_length=64)], password: Annotated[str, Form(max_length=200)],
          next: Annotated[str, Form(max_length=500)] = ""):
    """The login form is the one form without a session (and so without a
    CSRF token): SameSite cookies keep other sites from posting it usefully."""
    try:
        _s, token = auth_service.login(session, settings, username, password, ip=client_ip(request),
                                       user_agent=request.headers.get("user-agent", ""))
    except Unauthorized as e:
        session.commit()
        return page(request, "login.html", {"next": _safe_next(next) or "", "error": e.message,
                                            "username": username[:64]}, status_code=401)
    session.commit()
    from ...models import User
    user = session.get(User, _s.user_id)
    target = _safe_next(next) or ("/portal" if user.kind == "tenant" else "/staff")
    resp = RedirectResponse(target, status_code=303)
    resp.set_cookie(SESSION_COOKIE, token, max_age=settings.session_ttl_s, httponly=True, samesite="lax",
                    secure=settings.cookie_secure, path="/")
    return resp


@router.post("/logout", dependencies=[])
def logout(request: Request, session: SessionDep, actor: Annotated[Actor, require_web(P.AUTHENTICATED)]):
    auth_service.logout(session, actor, request.state.auth_session)
    session.commit()
    resp = RedirectResponse("/login", status_code=303)
    resp.delete_cookie(SESSION_COOKIE, path="/")
    return resp


@router.get("/", dependencies=[public()])
def root(request: Request, session: SessionDep):
    """Home: the portal for a tenant, the staff dashboard for staff, else the login page."""
    from ...api.deps import _cookie_actor
    actor = _cookie_actor(request, session)
    return RedirectResponse(home_of(actor) if actor is not None else "/login", status_code=303)


@router.get("/lang/{code}", dependencies=[public()])
def set_language(code: Annotated[str, Path(max_length=16)], request: Request,
                 next: Annotated[str, Query(max_length=500)] = "/"):
    resp = RedirectResponse(_safe_next(next) or "/", status_code=303)
    if code in i18n.LANGUAGES:
        resp.set_cookie(i18n.COOKIE, code, max_age=365 * 86400, samesite="lax", path="/")
    return resp
