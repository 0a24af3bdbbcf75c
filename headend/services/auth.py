"""Logging in: passwords, lockout, dashboard sessions, OAuth2 access
tokens, API tokens. Every login attempt, good or bad, is in the audit log
with the address it came from."""
from sqlmodel import select

from ..core import security
from ..core.paging import listed
from ..models import ApiToken, AuthSession, User, now_s
from ..models.user import KIND_SYSTEM
from . import audit
from .errors import Invalid, Locked, NotFound, Unauthorized
from .users import actor_for

COOKIE, BEARER = "cookie", "bearer"


def login(session, settings, username, password, ip="", user_agent="", kind=COOKIE):
    """Check a password and open a session. -> (AuthSession, raw token).
    Raises Locked (too many failures) or Unauthorized; both audited. The
    caller commits also when this raises (the failure must be recorded)."""
    now = now_s()
    username = (username or "").strip()[:64]
    user = session.exec(select(User).where(User.username == username)).first() if username else None
    if user is not None and user.kind != KIND_SYSTEM and user.locked_until and user.locked_until > now:
        audit.record(session, None, "login.locked", "user", user.id, username=username, ip=ip,
                     detail="refused: locked until %d" % user.locked_until)
        raise Locked("too many failed logins: try again in %d minutes"
                     % max(1, (user.locked_until - now + 59) // 60))
    ok, new_hash = security.verify_password(password, user.password_hash if user else "")
    if not ok or user is None or not user.active or user.kind == KIND_SYSTEM:
        detail = "bad password" if user is not None and ok is False else "no such user"
        if user is not None and not user.active:
            detail = "disabled user"
        if user is not None and user.kind != KIND_SYSTEM:
            user.failed_logins += 1
            if user.failed_logins >= settings.lockout_attempts:
                user.locked_until = now + settings.lockout_s
                user.failed_logins = 0
                detail += "; locked for %d minutes" % (settings.lockout_s // 60)
            session.add(user)
        audit.record(session, None, "login.failed", "user", user.id if user else "", username=username, ip=ip,
                     detail=detail)
        raise Unauthorized("wrong user name or password")
    if new_hash:
        user.password_hash = new_hash
    user.failed_logins, user.locked_until, user.last_login = 0, None, now
    session.add(user)
    token = security.new_token()
    ttl = settings.session_ttl_s if kind == COOKIE else settings.access_token_ttl_s
    s = AuthSession(user_id=user.id, kind=kind, token_hash=security.token_hash(token),
                    csrf_token=security.new_token(24) if kind == COOKIE else "", ip=ip[:64],
                    user_agent=(user_agent or "")[:300], created=now, expires=now + ttl, last_seen=now)
    session.add(s)
    session.flush()
    audit.record(session, actor_for(session, user, ip=ip), "login.success", "user", user.id,
                 detail="%s session" % kind)
    return s, token


def resolve_session(session, token, kind=COOKIE):
    """-> (User, AuthSession) for a live session token, else None."""
    if not token or len(token) > 200:
        return None
    s = session.exec(select(AuthSession).where(AuthSession.token_hash == security.token_hash(token))).first()
    now = now_s()
    if s is None or s.kind != kind or s.revoked or s.expires <= now:
        return None
    user = session.get(User, s.user_id)
    if user is None or not user.active:
        return None
    return user, s


def resolve_api_token(session, token):
    """-> (User, ApiToken) for a live API token, else None."""
    if not token or not token.startswith(security.API_TOKEN_PREFIX) or len(token) > 200:
        return None
    t = session.exec(select(ApiToken).where(ApiToken.token_hash == security.token_hash(token))).first()
    now = now_s()
    if t is None or t.revoked or (t.expires is not None and t.expires <= now):
        return None
    user = session.get(User, t.user_id)
    if user is None or not user.active:
        return None
    return user, t


def logout(session, actor, auth_session):
    auth_session.revoked = now_s()
    session.add(auth_session)
    audit.record(session, actor, "logout", "user", actor.user_id)


def revoke_all(session, user_id):
    now = now_s()
    for s in session.exec(select(AuthSession).where(AuthSession.user_id == user_id,
                                                    AuthSession.revoked.is_(None))).all():
        s.revoked = now
        session.add(s)
    for t in session.exec(select(ApiToken).where(ApiToken.user_id == user_id, ApiToken.revoked.is_(None))).all():
        t.revoked = now
        session.add(t)


def create_api_token(session, actor, name, scopes=(), expires_in_days=None):
    """A long-lived token for scripts and integrations, shown once. Scopes
    (permissions) narrow it; it can never do more than its user."""
    scopes = sorted(set(scopes))
    unknown = [s for s in scopes if s not in actor.permissions]
    if unknown:
        raise Invalid("scopes you do not hold: %s" % ", ".join(unknown))
    raw = security.new_api_token()
    now = now_s()
    t = ApiToken(user_id=actor.user_id, name=name, token_hash=security.token_hash(raw), prefix=raw[:12],
                 scopes=scopes, created=now, expires=now + expires_in_days * 86400 if expires_in_days else None)
    session.add(t)
    session.flush()
    audit.record(session, actor, "token.create", "api_token", t.id, after={"name": name, "scopes": scopes,
                                                                       "prefix": t.prefix, "expires": t.expires})
    return t, raw


def list_api_tokens(session, actor, paging=None):
    return listed(session, select(ApiToken).where(ApiToken.user_id == actor.user_id).order_by(ApiToken.id), paging,
                  ApiToken.name)


def revoke_api_token(session, actor, token_id):
    t = session.get(ApiToken, token_id)
    if t is None or (t.user_id != actor.user_id and actor.property_ids is not None):
        raise NotFound("no token %s" % token_id)
    if t.revoked is None:
        t.revoked = now_s()
        session.add(t)
        audit.record(session, actor, "token.revoke", "api_token", t.id, before={"name": t.name, "prefix": t.prefix})
    return t
