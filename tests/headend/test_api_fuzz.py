"""schemathesis against the running head-end (`wattkeeper serve`, its own
process) on SQLite and PostgreSQL: every operation of its OpenAPI schema,
valid and invalid inputs, authenticated as an admin with an API token.
No answer may be a server error, and no request may stall the process.
Bounded for CI: a fixed number of examples per operation, derandomized."""
import os

import pytest
import requests
import schemathesis
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from schemathesis import GenerationMode
from sqlalchemy import update

from headend.core import db, migrate
from headend.models import ApiToken, User
from headend.services import auth, users
from headend.services.actor import system_actor
from headend.services.sales import sell
from headend.services.seed import seed_site
from sim.brokers import stop_process
from sim.stack import serve_http

EXAMPLES = int(os.environ.get("WK_FUZZ_EXAMPLES", "15"))   # per operation and generation mode
REQUEST_TIMEOUT_S = 10  # an answer slower than this is a stalled process


def _seed(url):
    eng = db.make_engine(url)
    migrate.upgrade(eng)
    with db.session_factory(eng)() as s:
        sa = system_actor(s)
        seeded = seed_site(s, "Fuzz Court", [{"dev": "fz-c%d" % c, "meters": [
            {"id": "fz-%d-%d" % (c, m), "model": "sdm120", "opening_energy_wh": 0} for m in range(3)]}
            for c in range(2)], tariff_price_mu_per_kwh=6000, opening_balance_mu=50_0000)
        # a few users and tokens first, so the fuzzing admin's ids are not the smallest ones
        for i in range(4):
            u = users.create_user(s, sa, "fz-viewer-%d" % i, "viewer-password", role="viewer",
                                  property_ids=[seeded["property_id"]])
            auth.create_api_token(s, users.actor_for(s, u), "filler")
        admin = users.create_user(s, sa, "fz-admin", "admin-password", role="admin")
        _t, token = auth.create_api_token(s, users.actor_for(s, admin), "schemathesis")
        acc = next(iter(seeded["concentrators"]["fz-c0"]["meters"].values()))["account_id"]
        sell(s, sa, acc, 10_0000, push=False)
        s.commit()
    return eng, admin.id, token


@pytest.fixture(params=["sqlite", "postgresql"])
def running_headend(request, tmp_path):
    from tests.conftest import pg_database
    if request.param == "sqlite":
        url, drop = "sqlite:///" + str(tmp_path / "fuzz.db"), None
    else:
        url, drop = pg_database()
    eng, admin_id, token = _seed(url)
    log = open(tmp_path / "headend.log", "ab")
    try:
        proc, base = serve_http(url, log)
    except RuntimeError:
        raise RuntimeError("head-end did not start: " + open(tmp_path / "headend.log").read()[-2000:])
    yield base, eng, admin_id, token, tmp_path / "headend.log"
    stop_process(proc)
    eng.dispose()
    if drop:
        drop()


def keep_admin(eng, admin_id):
    """Whatever a fuzzed call did to the admin (demoted it, revoked its token),
    the next call is made as an admin again: the fuzz must keep reaching
    the routes behind the login."""
    with eng.begin() as c:
        c.execute(update(User).where(User.id == admin_id).values(role="admin", active=True, failed_logins=0,
                                                                  locked_until=None))
        c.execute(update(ApiToken).where(ApiToken.user_id == admin_id).values(revoked=None))


def test_no_input_makes_a_server_error(running_headend):
    base, eng, admin_id, token, log = running_headend
    schema = schemathesis.openapi.from_url(base + "/openapi.json")
    http = requests.Session()
    headers = {"Authorization": "Bearer " + token}
    failures, calls, operations = [], [0], []
    for result in schema.get_all_operations():
        op = result.ok()
        operations.append(op.label)
        strategy = st.one_of(op.as_strategy(GenerationMode.POSITIVE), op.as_strategy(GenerationMode.NEGATIVE))

        @settings(max_examples=EXAMPLES, deadline=None, derandomize=True, database=None,
                  suppress_health_check=list(HealthCheck))
        @given(case=strategy)
        def run(case):
            keep_admin(eng, admin_id)
            try:
                r = case.call(base_url=base, session=http, headers=headers, timeout=REQUEST_TIMEOUT_S)
            except requests.Timeout:
                failures.append("%s: no answer within %d s (%s)" % (op.label, REQUEST_TIMEOUT_S, case.as_curl_command()))
                return
            calls[0] += 1
            if r.status_code >= 500:
                failures.append("%s: %d %s\n  %s" % (op.label, r.status_code, r.text[:200], case.as_curl_command()))
        run()
    assert len(operations) >= 30, operations          # every operation of the schema was fuzzed
    assert calls[0] >= len(operations) * 4, calls
    print("fuzzed %d operations, %d calls" % (len(operations), calls[0]))
    assert not failures, "%d server errors in %d calls:\n%s\n--- head-end log:\n%s" % (
        len(failures), calls[0], "\n".join(failures[:20]), open(log).read()[-3000:])
