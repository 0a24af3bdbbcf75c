"""Logging in for API clients: the OAuth2 password flow, one's own profile
and password, long-lived API tokens."""
from typing import Annotated, Optional

from fastapi import APIRouter, Depends, Request, Response
from fastapi.security import OAuth2PasswordRequestForm
from pydantic import BaseModel

from ...core import permissions as P
from ...models import ApiTokenCreate, ApiTokenCreated, ApiTokenPublic, PasswordChange, TokenResponse, UserPublic
from ...services import auth as auth_service
from ...services import users as user_service
from ...services.actor import Actor
from ..deps import Id, PagingDep, SessionDep, SettingsDep, client_ip, paged, public, require

router = APIRouter(prefix="/api/auth", tags=["auth"])


class Me(UserPublic):
    permissions: list[str]
    all_properties: bool


class Done(BaseModel):
    ok: bool = True
    detail: Optional[str] = None


@router.post("/token", response_model=TokenResponse, dependencies=[public()])
def token(form: Annotated[OAuth2PasswordRequestForm, Depends()], request: Request, session: SessionDep,
          settings: SettingsDep):
    """OAuth2 password flow: form fields `username` and `password` ->
    `{"access_token", "token_type": "bearer"}`. Five wrong passwords lock the
    user for 15 minutes (423)."""
    try:
        _s, raw = auth_service.login(session, settings, form.username, form.password, ip=client_ip(request),
                                     user_agent=request.headers.get("user-agent", ""), kind=auth_service.BEARER)
    finally:
        session.commit()     # a failed attempt is recorded (and counted) too
    return TokenResponse(access_token=raw, token_type="bearer", expires_in=settings.access_token_ttl_s)


@router.post("/logout", response_model=Done)
def logout(request: Request, session: SessionDep, actor: Annotated[Actor, require(P.AUTHENTICATED)]):
    """End this access token (an API token is revoked with DELETE /api/auth/tokens/{id})."""
    s = getattr(request.state, "auth_session", None)
    if s is None:
        return Done(ok=False, detail="an API token is not ended by logout: revoke it")
    auth_service.logout(session, actor, s)
    session.commit()
    return Done()


@router.get("/me", response_model=Me)
def me(session: SessionDep, actor: Annotated[Actor, require(P.AUTHENTICATED)]):
    d = user_service.public(session, actor.user)
    return Me(**d, permissions=sorted(actor.permissions), all_properties=actor.property_ids is None)


@router.post("/password", response_model=Done)
def change_password(body: PasswordChange, session: SessionDep, actor: Annotated[Actor, require(P.AUTHENTICATED)]):
    user_service.change_own_password(session, actor, body.current_password, body.new_password)
    session.commit()
    return Done()


@router.get("/tokens", response_model=list[ApiTokenPublic])
def list_tokens(request: Request, response: Response, session: SessionDep,
                actor: Annotated[Actor, require(P.AUTHENTICATED)], paging: PagingDep):
    return paged(request, response, auth_service.list_api_tokens(session, actor, paging=paging))


@router.post("/tokens", response_model=ApiTokenCreated, status_code=201)
def create_token(body: ApiTokenCreate, session: SessionDep, actor: Annotated[Actor, require(P.AUTHENTICATED)]):
    """A long-lived API token (shown only here), limited to `scopes`
    (permissions; empty: all of yours). Stored hashed; revoke it any time."""
    t, raw = auth_service.create_api_token(session, actor, body.name, body.scopes, body.expires_in_days)
    session.commit()
    return ApiTokenCreated(**t.model_dump(), token=raw)


@router.delete("/tokens/{token_id}", response_model=ApiTokenPublic)
def revoke_token(token_id: Id, session: SessionDep, actor: Annotated[Actor, require(P.AUTHENTICATED)]):
    t = auth_service.revoke_api_token(session, actor, token_id)
    session.commit()
    return t
