"""People who log in: staff (one role, granted properties) and tenants (their
own accounts). Dashboard sessions and OAuth2 access tokens are AuthSession
rows; long-lived API tokens are ApiToken rows. Only hashes of passwords and
tokens are stored."""
from typing import Any, Optional

from sqlalchemy import JSON, Column, UniqueConstraint
from sqlmodel import Field, SQLModel

from .base import Body, BodyId, big, id_field, now_s

KIND_STAFF = "staff"
KIND_TENANT = "tenant"
KIND_SYSTEM = "system"        # the head-end itself (seed, migrations); cannot log in
USERNAME_PATTERN = r"^[A-Za-z0-9_.@-]{2,64}$"


class User(SQLModel, table=True):
    __tablename__ = "app_user"
    id: Optional[int] = Field(default=None, primary_key=True)
    username: str = Field(index=True, unique=True, max_length=64)
    display_name: str = Field(default="", max_length=200)
    kind: str = Field(default=KIND_STAFF, max_length=16)
    role: Optional[str] = Field(default=None, max_length=16)      # staff only
    tenant_id: Optional[int] = Field(default=None, foreign_key="tenant.id", index=True)
    password_hash: str = Field(default="", max_length=300)
    active: bool = True
    failed_logins: int = 0
    locked_until: Optional[int] = big(default=None)
    last_login: Optional[int] = big(default=None)
    must_change_password: bool = False
    language: str = Field(default="", max_length=8)
    created_by_user_id: Optional[int] = Field(default=None, foreign_key="app_user.id")
    created: int = big(default_factory=now_s)


class UserGrant(SQLModel, table=True):
    """Staff user `user_id` may act on property `property_id`, or on every
    property of organisation `organisation_id`."""
    __tablename__ = "user_grant"
    __table_args__ = (UniqueConstraint("user_id", "property_id", "organisation_id", name="uq_user_grant"),)
    id: Optional[int] = Field(default=None, primary_key=True)
    user_id: int = Field(foreign_key="app_user.id", index=True)
    property_id: Optional[int] = Field(default=None, foreign_key="property.id")
    organisation_id: Optional[int] = Field(default=None, foreign_key="organisation.id")
    created: int = big(default_factory=now_s)


class AuthSession(SQLModel, table=True):
    """A dashboard session (cookie) or an OAuth2 access token (bearer)."""
    __tablename__ = "auth_session"
    id: Optional[int] = Field(default=None, primary_key=True)
    user_id: int = Field(foreign_key="app_user.id", index=True)
    kind: str = Field(default="cookie", max_length=16)   # cookie, bearer
    token_hash: str = Field(index=True, unique=True, max_length=64)
    csrf_token: str = Field(default="", max_length=64)
    ip: str = Field(default="", max_length=64)
    user_agent: str = Field(default="", max_length=300)
    created: int = big(default_factory=now_s)
    expires: int = big()
    last_seen: int = big(default_factory=now_s)
    revoked: Optional[int] = big(default=None)


class ApiToken(SQLModel, table=True):
    """A long-lived API token of a user, limited to `scopes` (permissions;
    empty = the user's own), revocable."""
    __tablename__ = "api_token"
    id: Optional[int] = Field(default=None, primary_key=True)
    user_id: int = Field(foreign_key="app_user.id", index=True)
    name: str = Field(max_length=100)
    token_hash: str = Field(index=True, unique=True, max_length=64)
    prefix: str = Field(max_length=16)            # the first characters, to recognise it
    scopes: list[str] = Field(default_factory=list, sa_column=Column(JSON, nullable=False))
    created: int = big(default_factory=now_s)
    expires: Optional[int] = big(default=None)
    last_used: Optional[int] = big(default=None)
    revoked: Optional[int] = big(default=None)


# ------------------------------------------------------------------ bodies
class UserCreate(Body):
    username: str = Field(min_length=2, max_length=64, schema_extra={"pattern": USERNAME_PATTERN})
    display_name: str = Field(default="", max_length=200)
    password: str = Field(min_length=8, max_length=200)
    role: Optional[str] = Field(default=None, schema_extra={"pattern": r"^(admin|manager|cashier|technician|viewer)$"},
                                description="staff role; absent for a tenant login")
    tenant_id: Optional[int] = id_field(default=None, description="a tenant's portal login")
    property_ids: list[BodyId] = Field(default_factory=list, max_length=1000,
                                    description="properties the staff user is granted")
    organisation_ids: list[BodyId] = Field(default_factory=list, max_length=100,
                                        description="organisations whose every property is granted")


class UserUpdate(Body):
    display_name: Optional[str] = Field(default=None, max_length=200)
    role: Optional[str] = Field(default=None, schema_extra={"pattern": r"^(admin|manager|cashier|technician|viewer)$"})
    active: Optional[bool] = None
    property_ids: Optional[list[BodyId]] = Field(default=None, max_length=1000)
    organisation_ids: Optional[list[BodyId]] = Field(default=None, max_length=100)
    password: Optional[str] = Field(default=None, min_length=8, max_length=200)


class UserPublic(SQLModel):
    id: int
    username: str
    display_name: str
    kind: str
    role: Optional[str]
    tenant_id: Optional[int]
    active: bool
    locked: bool = False
    last_login: Optional[int]
    property_ids: list[int] = []
    organisation_ids: list[int] = []


class PasswordChange(Body):
    current_password: str = Field(max_length=200)
    new_password: str = Field(min_length=8, max_length=200)


class ApiTokenCreate(Body):
    name: str = Field(min_length=1, max_length=100)
    scopes: list[str] = Field(default_factory=list, max_length=50,
                              description="permissions the token may use (empty: all of the user's)")
    expires_in_days: Optional[int] = Field(default=None, ge=1, le=3650)


class ApiTokenPublic(SQLModel):
    id: int
    name: str
    prefix: str
    scopes: list[Any]
    created: int
    expires: Optional[int]
    last_used: Optional[int]
    revoked: Optional[int]


class ApiTokenCreated(ApiTokenPublic):
    token: str


class TokenResponse(SQLModel):
    access_token: str
    token_type: str = "bearer"
    expires_in: int
