"""Staff and tenant logins, for admins and managers."""
from typing import Annotated, Optional

from fastapi import APIRouter, Form, Request
from fastapi.responses import HTMLResponse

from ...api.deps import PagingDep, SessionDep, require_web
from ...core import permissions as P
from ...core.paging import MAX_LIMIT, Paging
from ...services import properties
from ...services import users as user_service
from ...services.actor import Actor
from ...services.errors import DomainError
from ..render import page

router = APIRouter(prefix="/staff/users", include_in_schema=False)


def _render(request, session, actor, paging=None, error=None, created=None, status_code=200):
    paging = paging or Paging()
    found = user_service.list_users(session, actor, paging=paging)
    found.items = [user_service.public(session, u) for u in found.items]
    roles = P.ROLES if actor.property_ids is None else P.MANAGER_ASSIGNABLE
    props = properties.list_properties(session, actor, paging=Paging(limit=MAX_LIMIT)).items
    return page(request, "staff/users.html", {"page": found, "params": {"q": paging.q}, "roles": roles,
                                              "role_text": P.ROLE_TEXT, "properties": props,
                                              "error": error, "created": created}, status_code=status_code)


@router.get("", response_class=HTMLResponse)
def users_page(request: Request, session: SessionDep, actor: Annotated[Actor, require_web(P.USERS_MANAGE)],
               paging: PagingDep):
    return _render(request, session, actor, paging)


@router.post("", response_class=HTMLResponse)
def create_user(request: Request, session: SessionDep, actor: Annotated[Actor, require_web(P.USERS_MANAGE)],
                username: Annotated[str, Form(max_length=64)], password: Annotated[str, Form(max_length=200)],
                role: Annotated[str, Form(max_length=16)], display_name: Annotated[str, Form(max_length=200)] = "",
                property_id: Annotated[Optional[int], Form(ge=1, le=2 ** 31 - 1)] = None):
    try:
        u = user_service.create_user(session, actor, username.strip(), password, role=role,
                                     display_name=display_name.strip(),
                                     property_ids=[property_id] if property_id else [])
        session.commit()
    except DomainError as e:
        session.rollback()
        return _render(request, session, actor, error=e.message, status_code=e.status)
    return _render(request, session, actor, created=u.username)
