"""Domain errors. api/errors.py turns them into HTTP answers (404, 409, 422,
403, 401); the CLI prints them."""


class DomainError(Exception):
    status = 400

    def __init__(self, message):
        Exception.__init__(self, message)
        self.message = message


class NotFound(DomainError):
    """No such thing, or not one the caller may see (the same answer, so an
    id tells nobody whether it exists)."""
    status = 404


class Conflict(DomainError):
    status = 409


class Invalid(DomainError):
    status = 422


class Forbidden(DomainError):
    status = 403


class Unauthorized(DomainError):
    """Not logged in, or the login failed."""
    status = 401


class Locked(Unauthorized):
    """Too many failed logins: the account is locked for a while."""
