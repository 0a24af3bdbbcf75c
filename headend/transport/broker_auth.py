"""The embedded broker's door (amqtt plugins): the same rules as the
Mosquitto configuration of `wattkeeper broker-config` (broker_config.py).

* PasswordFileAuth: a client needs a user name and password from Mosquitto
  password files (`$7$` PBKDF2-SHA512, as broker_config and mosquitto_passwd
  write them), re-read when they change; no anonymous clients. A board's
  client id must be its user name (its device id), a head-end worker's must
  be the head-end user name or start with it and "-": nobody takes over
  another client's session.
* DeviceTopicAcl: a board publishes only wk/<its id>/up and subscribes to and
  receives only wk/<its id>/down; the head-end reads wk/+/up and writes
  wk/+/down. Nobody else may publish on a downlink topic, so no retained
  message can be left there.
"""
import os
import threading
from dataclasses import dataclass, field

from amqtt.contexts import Action
from amqtt.plugins.base import BaseAuthPlugin, BaseTopicPlugin

from concentrator import protocol

from .broker_config import HEADEND_USER, read_password_file, verify_mosquitto_hash


class _Users:
    """{user: hash} of password files, re-read when one of them changes."""

    def __init__(self, paths):
        self.paths = [p for p in paths if p]
        self._stamp = None
        self._users = {}
        self._lock = threading.Lock()

    def get(self, user):
        stamp = tuple(os.stat(p).st_mtime_ns if os.path.exists(p) else None for p in self.paths)
        with self._lock:
            if stamp != self._stamp:
                users = {}
                for p in self.paths:
                    if os.path.exists(p):
                        users.update(read_password_file(p))
                self._users, self._stamp = users, stamp
            return self._users.get(user)


def is_headend_client(user, client_id, headend_users):
    return user in headend_users and (client_id == user or str(client_id).startswith(user + "-"))


class PasswordFileAuth(BaseAuthPlugin):
    @dataclass
    class Config:
        password_files: list = field(default_factory=list)
        headend_users: list = field(default_factory=lambda: [HEADEND_USER])

    def __init__(self, context):
        super().__init__(context)
        self.users = _Users(self.config.password_files)
        self.headend_users = set(self.config.headend_users)

    async def authenticate(self, *, session):
        user = session.username if session else None
        if not user or session.password is None:
            return False
        stored = self.users.get(user)
        if stored is None or not verify_mosquitto_hash(session.password, stored):
            return False
        if user in self.headend_users:
            return is_headend_client(user, session.client_id, self.headend_users)
        return session.client_id == user


class DeviceTopicAcl(BaseTopicPlugin):
    @dataclass
    class Config:
        headend_users: list = field(default_factory=lambda: [HEADEND_USER])

    def __init__(self, context):
        super().__init__(context)
        self.headend_users = set(self.config.headend_users)

    async def topic_filtering(self, *, session=None, topic=None, action=None):
        user = session.username if session else None
        if not user or not topic:
            return False
        if user in self.headend_users:
            parts = topic.split("/")
            if len(parts) != 3 or parts[0] != "wk" or "#" in parts[1]:
                return False
            if action == Action.PUBLISH:
                return parts[2] == "down" and "+" not in parts[1]
            return parts[2] == "up"
        if action == Action.PUBLISH:
            return topic == protocol.topic_up(user)
        return topic == protocol.topic_down(user)


def plugins_config(password_files, headend_users=(HEADEND_USER,)):
    """The `plugins` section of an amqtt broker config with these doors."""
    return {
        "headend.transport.broker_auth.PasswordFileAuth": {"password_files": list(password_files),
                                                           "headend_users": list(headend_users)},
        "headend.transport.broker_auth.DeviceTopicAcl": {"headend_users": list(headend_users)},
    }
