"""Typed dependencies of the routes.

    SessionDep                       a database session for the request
    SettingsDep                      the head-end's settings
    actor: Annotated[Actor, require(P.MONEY_SELL)]
                                     the authenticated person, refused (401/403)
                                     unless it holds the permission
    dependencies=[public()]          a route anyone may call (declared, so the
                                     role-matrix test knows it is meant)

Every route declares exactly one of require(...) or public(); the role-matrix
test (tests/headend/api/test_role_matrix.py) fails a route that declares
neither. API routes authenticate with a bearer token (OAuth2 access token
from POST /api/auth/token, or an API token); dashboard routes (web/) with
the session cookie, and their forms carry a CSRF token.
"""
from typing import Annotated, Optional

from fastapi import Depends, Path, Query, Request, Response
from fastapi.security import OAuth2PasswordBearer
from sqlmodel import Session

from ..core import security
from ..core.config import Settings
from ..core.paging import DEFAULT_LIMIT, MAX_LIMIT, MAX_OFFSET, MAX_Q, Paging
from ..models import MAX_ID, now_s
from ..models.concentrator import DEV_PATTERN
from ..services import auth as auth_service
from ..services.actor import Actor
from ..services.errors import Forbidden, Unauthorized
from ..services.users import actor_for

SESSION_COOKIE = "wk_session"
CSRF_FIELD = "csrf_token"
CSRF_HEADER = "x-csrf-token"
UNSAFE = {"POST", "PUT", "PATCH", "DELETE"}

oauth2_scheme = OAuth2PasswordBearer(tokenUrl="/api/auth/token", auto_error=False)


def get_session(request: Request):
    with request.app.state.session_factory() as s:
        yield s


def get_settings(request: Request) -> Settings:
    return request.app.state.settings


SessionDep = Annotated[Session, Depends(get_session)]
SettingsDep = Annotated[Settings, Depends(get_settings)]

# bounded ids and paging for every route
Id = Annotated[int, Path(ge=1, le=MAX_ID)]
Limit = Annotated[int, Query(ge=1, le=MAX_LIMIT)]
Offset = Annotated[int, Query(ge=0, le=MAX_OFFSET)]
Search = Annotated[str, Query(max_length=MAX_Q, description="only rows containing this text (any case)")]
OptId = Annotated[Optional[int], Query(ge=1, le=MAX_ID)]
Dev = Annotated[str, Path(min_length=1, max_length=64, pattern=DEV_PATTERN, description="device id")]


def paging_params(limit: Limit = DEFAULT_LIMIT, offset: Offset = 0, q: Search = "") -> Paging:
    return Paging(limit=limit, offset=offset, q=q)


# ?limit (1..1000, default 100) &offset &q of every list (core/paging.py)
PagingDep = Annotated[Paging, Depends(paging_params)]


def paged(request: Request, response: Response, page):
    """A list route's answer: the page's rows as the JSON array, and in the
    headers X-Total-Count (when counted) and Link rel="next"/"prev"."""
    links = []
    for rel, off in (("next", page.next_offset), ("prev", page.prev_offset)):
        if off is not None:
            links.append('<%s>; rel="%s"' % (request.url.include_query_params(offset=off, limit=page.limit), rel))
    if links:
        response.headers["Link"] = ", ".join(links)
    if page.total is not None:
        response.headers["X-Total-Count"] = str(page.total)
    return page.items


def client_ip(request: Request):
    return request.client.host if request.client else ""


class LoginRequired(Unauthorized):
    """A dashboard page without a session: the browser goes to /login."""


def _bearer_actor(request, session, token):
    ip = client_ip(request)
    if token.startswith(security.API_TOKEN_PREFIX):
        found = auth_service.resolve_api_token(session, token)
        if found is None:
            return None
        user, api_token = found
        api_token.last_used = now_s()
        session.add(api_token)
        session.commit()
        return actor_for(session, user, ip=ip, source="api", scopes=api_token.scopes or None)
    found = auth_service.resolve_session(session, token, kind=auth_service.BEARER)
    if found is None:
        return None
    user, auth_session = found
    request.state.auth_session = auth_session
    return actor_for(session, user, ip=ip, source="api")


def _cookie_actor(request, session):
    token = request.cookies.get(SESSION_COOKIE)
    found = auth_service.resolve_session(session, token, kind=auth_service.COOKIE) if token else None
    if found is None:
        return None
    user, auth_session = found
    request.state.auth_session = auth_session
    return actor_for(session, user, ip=client_ip(request), source="desk")


class Permission:
    """The dependency a route declares: authenticates the caller and checks
    that its role holds `permission` (property scope is checked by the
    services on the thing the route touches)."""

    def __init__(self, permission, web=False):
        self.permission = permission
        self.web = web

    async def __call__(self, request: Request, session: SessionDep) -> Actor:
        if self.web:
            actor = _cookie_actor(request, session)
            if actor is None:
                raise LoginRequired("log in first")
            if request.method in UNSAFE:
                await _check_csrf(request)
        else:
            token = await oauth2_scheme(request)
            actor = _bearer_actor(request, session, token) if token else None
            if actor is None:
                raise Unauthorized("authentication required: a bearer token from POST /api/auth/token "
                                   "or an API token")
        request.state.actor = actor
        if self.permission not in actor.permissions:
            raise Forbidden("%s may not %s" % (actor.role or actor.kind, self.permission))
        return actor


async def _check_csrf(request):
    auth_session = getattr(request.state, "auth_session", None)
    sent = request.headers.get(CSRF_HEADER)
    if not sent:
        ctype = request.headers.get("content-type", "")
        if ctype.startswith("application/x-www-form-urlencoded") or ctype.startswith("multipart/form-data"):
            form = await request.form()
            sent = form.get(CSRF_FIELD)
    if auth_session is None or not sent or not security.same(str(sent), auth_session.csrf_token):
        raise Forbidden("the form's CSRF token is missing or stale: reload the page and try again")


class Public:
    """Marks a route that anyone may call."""
    permission = None

    def __call__(self):
        return None


def require(permission):
    return Depends(Permission(permission))


def require_web(permission):
    return Depends(Permission(permission, web=True))


def public():
    return Depends(Public())
