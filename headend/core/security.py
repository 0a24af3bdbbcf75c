"""Passwords (Argon2 through pwdlib), random tokens and their hashes.

Passwords are stored only as Argon2 hashes. Session cookies, OAuth2 access
tokens and API tokens are random strings shown once; the database keeps
their SHA-256, so a copy of the database logs nobody in.
"""
import hashlib
import hmac
import secrets

from pwdlib import PasswordHash
from pwdlib.hashers.argon2 import Argon2Hasher

_hasher = PasswordHash((Argon2Hasher(),))
# verified against when the user does not exist, so a wrong user name costs
# the same time as a wrong password
_DUMMY_HASH = _hasher.hash("wattkeeper-no-such-user")

API_TOKEN_PREFIX = "wkt_"
MIN_PASSWORD_LENGTH = 8


def hash_password(password):
    return _hasher.hash(password)


def verify_password(password, password_hash):
    """-> (ok, new_hash or None): new_hash when the stored hash should be upgraded."""
    if not password_hash:
        _hasher.verify(password or "", _DUMMY_HASH)
        return False, None
    try:
        return _hasher.verify_and_update(password or "", password_hash)
    except Exception:   # a malformed stored hash: refuse, never crash
        return False, None


def new_token(nbytes=32):
    return secrets.token_urlsafe(nbytes)


def new_api_token():
    return API_TOKEN_PREFIX + secrets.token_urlsafe(32)


def token_hash(token):
    return hashlib.sha256(token.encode("utf-8", "replace")).hexdigest()


def same(a, b):
    """Constant-time comparison of two strings."""
    return hmac.compare_digest((a or "").encode(), (b or "").encode())


def new_password(nbytes=12):
    """A one-time password a person can type."""
    return secrets.token_urlsafe(nbytes)
