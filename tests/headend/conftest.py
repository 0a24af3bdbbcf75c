"""Fixtures of the head-end tests: an app on a real SQLite file (no MQTT),
users of every role, and clients logged in as them."""
import pytest
from fastapi.testclient import TestClient

from headend.core.config import Settings
from headend.main import create_app
from headend.services import users
from headend.services.actor import system_actor


class As:
    """A TestClient that sends one user's bearer token."""

    def __init__(self, client, token=None):
        self.client = client
        self.app = client.app
        self.headers = {"Authorization": "Bearer " + token} if token else {}

    def _h(self, kw):
        h = dict(self.headers)
        h.update(kw.pop("headers", None) or {})
        kw["headers"] = h
        return kw

    def get(self, url, **kw):
        return self.client.get(url, **self._h(kw))

    def post(self, url, **kw):
        return self.client.post(url, **self._h(kw))

    def put(self, url, **kw):
        return self.client.put(url, **self._h(kw))

    def patch(self, url, **kw):
        return self.client.patch(url, **self._h(kw))

    def delete(self, url, **kw):
        return self.client.delete(url, **self._h(kw))

    def request(self, method, url, **kw):
        return self.client.request(method, url, **self._h(kw))


def make_user(app, username, role=None, property_ids=(), tenant_id=None, password=None):
    password = password or username + "-password"
    with app.state.session_factory() as s:
        u = users.create_user(s, system_actor(s), username, password, role=role, tenant_id=tenant_id,
                              property_ids=list(property_ids))
        s.commit()
        return u.id, password


def token_for(client, username, password):
    r = client.post("/api/auth/token", data={"username": username, "password": password})
    assert r.status_code == 200, r.text
    return r.json()["access_token"]


@pytest.fixture
def app(tmp_path):
    return create_app(Settings(database_url="sqlite:///" + str(tmp_path / "api.db")), start_mqtt=False)


@pytest.fixture
def client(app):
    with TestClient(app) as c:
        yield c


@pytest.fixture
def login(app, client):
    """login(username, role=..., property_ids=..., tenant_id=...) -> As client
    (the user is created on first use)."""
    made = {}

    def _login(username, role=None, property_ids=(), tenant_id=None):
        if username not in made:
            made[username] = make_user(app, username, role, property_ids, tenant_id)
        return As(client, token_for(client, username, made[username][1]))
    return _login


@pytest.fixture
def admin(login):
    return login("admin-t", "admin")
