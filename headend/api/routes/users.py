"""Staff users and tenants' logins (admins: everyone; managers: the
cashiers, technicians and viewers of their properties)."""
from typing import Annotated

from fastapi import APIRouter, Request, Response

from ...core import permissions as P
from ...models import UserCreate, UserPublic, UserUpdate
from ...services import users as user_service
from ...services.actor import Actor
from ..deps import Id, PagingDep, SessionDep, paged, require

router = APIRouter(prefix="/api/users", tags=["users"])


@router.get("", response_model=list[UserPublic])
def list_users(request: Request, response: Response, session: SessionDep,
               actor: Annotated[Actor, require(P.USERS_MANAGE)], paging: PagingDep):
    """One page; `q` searches user name and display name."""
    page = user_service.list_users(session, actor, paging=paging)
    page.items = [user_service.public(session, u) for u in page.items]
    return paged(request, response, page)


@router.post("", response_model=UserPublic, status_code=201)
def create_user(body: UserCreate, session: SessionDep, actor: Annotated[Actor, require(P.USERS_MANAGE)]):
    u = user_service.create_user(session, actor, body.username, body.password, role=body.role,
                                 tenant_id=body.tenant_id, display_name=body.display_name,
                                 property_ids=body.property_ids, organisation_ids=body.organisation_ids)
    session.commit()
    return user_service.public(session, u)


@router.get("/{user_id}", response_model=UserPublic)
def get_user(user_id: Id, session: SessionDep, actor: Annotated[Actor, require(P.USERS_MANAGE)]):
    return user_service.public(session, user_service.get_user(session, actor, user_id))


@router.patch("/{user_id}", response_model=UserPublic)
def update_user(user_id: Id, body: UserUpdate, session: SessionDep,
                actor: Annotated[Actor, require(P.USERS_MANAGE)]):
    u = user_service.update_user(session, actor, user_id, display_name=body.display_name, role=body.role,
                                 active=body.active, property_ids=body.property_ids,
                                 organisation_ids=body.organisation_ids, password=body.password)
    session.commit()
    return user_service.public(session, u)
