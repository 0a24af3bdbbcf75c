"""Nothing a board receives can crash a step or brick it (issue 14, check 1
and the flash part of check 5): every downlink body is checked against its
schema before it is applied, a bad one is refused with an event saying why
and the last good settings stay in force; the state file is checked at boot
the same way; refusals are counted and reported at a bounded rate without a
flash write of their own."""
import copy
import json
import random

import pytest

from concentrator import protocol as P
from concentrator import relay as R
from concentrator import schema as S
from tests.firmware.offline import Board, START

BAD_FRIENDLY = {"friendly": "22:00-07:00", "min_switch_s": 0}


# ---- the case from the field --------------------------------------------------
def test_friendly_as_a_string_is_refused_and_the_relays_keep_working(tmp_path):
    b = Board(tmp_path, policy={"min_switch_s": 0})
    good = dict(b.fw.policy)
    b.credit(0, bal=6000)                  # 50 minutes of credit at 1.2 kW
    b.push(P.COMMAND, op="policy", policy=BAD_FRIENDLY)
    assert b.fw.policy == good, "the last good policy stays in force"
    assert "policy.friendly" in b.fw.last_reject and "string" in b.fw.last_reject
    b.run(70 * 60)                         # every step still works ...
    assert not b.closed(0), "... and the relay opens at zero credit as before"
    assert b.closed(1)
    assert b.rejections() == {"bad_fields": 1}
    # a power cycle boots with the good policy (the bad one was never saved)
    b.vc.power_cycle()
    b.run(60)
    assert b.fw.policy == good


def test_a_bad_policy_in_the_state_file_boots_with_the_site_policy(tmp_path):
    site_policy = {"min_switch_s": 0, "emergency_mu": 0}
    b = Board(tmp_path, policy=site_policy)
    st = b.fw.hal.read_json("/state.json")
    st["policy"] = BAD_FRIENDLY              # what the old firmware saved
    st["mpol"] = {"C1-101": {"friendly": 7}}
    b.fw.hal.write_json("/state.json", st)
    b.vc.power_cycle()
    b.run(120)
    b.credit(0, bal=1200)                   # 10 minutes
    b.run(20 * 60)
    assert b.fw.policy == S.check_policy(site_policy)
    assert b.fw.meters.policy[0] is None
    assert not b.closed(0), "relays enforced by the site's policy after the reboot"
    parts = sorted(P.STATE_PARTS[r[4][1]] for r in b.events(P.EV_STATE_REJECTED))
    assert parts == ["mpol", "policy"]


def test_schema_reasons_are_readable():
    def why(p):
        with pytest.raises(ValueError) as e:
            S.check_policy(p)
        return str(e.value)
    assert 'policy.friendly: must be a list of ["HH:MM", "HH:MM"] pairs' in why({"friendly": "22:00-07:00"})
    assert "policy.friendly[0][1]: no such time 24:00" in why({"friendly": [["22:00", "24:00"]]})
    assert "policy.emergency_mu: must be an integer, got a string" in why({"emergency_mu": "5"})
    assert "policy: unknown setting 'friendy'" in why({"friendy": []})
    assert "policy.holidays[0]: no such date 2026-02-30" in why({"holidays": ["2026-02-30"]})
    assert "min_switch_s: must be between 0 and 86400" in why({"min_switch_s": 10 ** 20})
    full = S.check_policy({"friendly": [["22:00", "07:00"]]})
    assert full["friendly"] == [["22:00", "07:00"]] and full["min_switch_s"] == R.DEFAULT["min_switch_s"]
    with pytest.raises(ValueError, match="cmd: unknown op 'reboot'"):
        S.check_downlink({"t": "cmd", "op": "reboot"}, 4)
    with pytest.raises(ValueError, match=r"cmd relay.m: must be between 0 and 3"):
        S.check_downlink({"t": "cmd", "op": "relay", "m": 4, "state": "open", "until": 2000000000}, 4)
    with pytest.raises(ValueError, match="credit.bal"):
        S.check_downlink({"t": "credit", "m": 0, "bal": "5", "e": 0}, 4)


# ---- fuzz ---------------------------------------------------------------------
def _valid_bodies(b, rng):
    now = b.fw.hal.time()
    n = len(b.fw.meters)
    m = rng.randrange(n)
    return [
        (P.ACK, {"seq": rng.randint(0, b.fw.journal.last_seq + 2)}),
        (P.CREDIT, {"m": m, "bal": rng.randint(-5000, 50000), "e": b.fw.meters.last_energy[m] or 0,
                    "c": b.fw.credits.charged[m], "top": rng.randint(0, 5)}),
        (P.TARIFF, {"spec": [{"version": 2, "effective": 0, "tz_offset_s": 28800, "price": 6000}]}),
        (P.COMMAND, {"op": "relay", "m": m, "state": rng.choice(["open", "closed", "auto"]),
                     "until": now + rng.randint(1, 600), "exp": now + 300}),
        (P.COMMAND, {"op": "time", "time": now, "exp": now + 300}),
        (P.COMMAND, {"op": "policy", "policy": {"friendly": [["22:00", "07:00"]], "min_switch_s": 0,
                                                "emergency_mu": rng.randint(0, 1000),
                                                "holidays": ["2026-10-01"]}, "exp": now + 300}),
        (P.COMMAND, {"op": "policy", "m": m, "policy": {"load_limit_w": 5000}, "exp": now + 300}),
    ]


_WEIRD = ["22:00-07:00", "", "x" * 300, None, True, False, 0, -1, 1 << 70, -(1 << 70), 1.5, 1e300,
          [], [1, 2], ["22:00"], [["22:00", "07:00"]], {}, {"a": 1}, "2026-10-01", [[[[]]]],
          "open", "auto", -0.0, 10 ** 16, 2 ** 31, 2 ** 32 + 1]


def _weird(rng):
    v = rng.choice(_WEIRD)
    return copy.deepcopy(v)


def _mutate(obj, rng, depth=0):
    """A copy of obj with one random change somewhere inside."""
    obj = copy.deepcopy(obj)
    if isinstance(obj, dict) and obj and rng.random() < 0.85:
        k = rng.choice(sorted(obj, key=str))
        r = rng.random()
        if r < 0.2:
            del obj[k]
        elif r < 0.3:
            obj[rng.choice(["x", "op", "m", "policy", "friendly", "until"]) + rng.choice(["", "_"])] = _weird(rng)
        elif r < 0.6 and isinstance(obj[k], (dict, list)) and depth < 4:
            obj[k] = _mutate(obj[k], rng, depth + 1)
        else:
            obj[k] = _weird(rng)
        return obj
    if isinstance(obj, list) and obj and rng.random() < 0.85:
        i = rng.randrange(len(obj))
        if isinstance(obj[i], (dict, list)) and depth < 4 and rng.random() < 0.5:
            obj[i] = _mutate(obj[i], rng, depth + 1)
        elif rng.random() < 0.2:
            del obj[i]
        else:
            obj[i] = _weird(rng)
        return obj
    return _weird(rng)


def _random_json(rng, depth=0):
    r = rng.random()
    if depth > 3 or r < 0.4:
        return _weird(rng)
    if r < 0.7:
        return [_random_json(rng, depth + 1) for _ in range(rng.randint(0, 4))]
    return {rng.choice(["t", "op", "m", "seq", "bal", "e", "spec", "policy", "nonce", "until",
                        "state", "time", "exp", "zz"]): _random_json(rng, depth + 1)
            for _ in range(rng.randint(0, 5))}


def fuzz(b, count, seed):
    """`count` signed downlinks, random and mutated, with steps in between.
    Returns how many the board accepted. Any exception fails the test."""
    rng = random.Random(seed)
    accepted = 0
    for k in range(count):
        r = rng.random()
        kind, fields = rng.choice(_valid_bodies(b, rng))
        if r < 0.15:
            pass                                        # a valid body
        elif r < 0.75:
            fields = _mutate(fields, rng)
            if not isinstance(fields, dict):
                fields = {"x": fields}
        elif r < 0.9:
            kind = rng.choice([P.ACK, P.CREDIT, P.TARIFF, P.COMMAND, "ota", "zz", ""])
            fields = _random_json(rng)
            if not isinstance(fields, dict):
                fields = {"spec": fields}
        else:
            # not even a dict of fields: a body that is JSON but nothing else
            b.n += 1
            raw = json.dumps(_random_json(rng)).encode()
            if rng.random() < 0.5:
                raw = json.dumps({"v": 1, "dev": b.fw.dev, "n": b.n, "t": kind, "ts": 0,
                                  "op": _random_json(rng)}).encode()
            b.deliver(raw + b"\n" + P.hexlify(P.hmac_sha256(b.fw.key, raw)).encode())
            continue
        if "rekey" in json.dumps(fields):
            fields.pop("op", None)                      # the key stays the test's
        before = b.fw.rejected
        b.push(kind, **{k2: v for k2, v in fields.items() if k2 not in P.ENVELOPE})
        accepted += b.fw.rejected == before
        if k % 25 == 0:
            b.fw.step()                                 # never raises
            b.site.run(30)
    return accepted


def test_ten_thousand_fuzzed_downlinks_never_crash_a_step(tmp_path):
    b = Board(tmp_path, meters=4)
    accepted = fuzz(b, 10000, seed=14)
    assert 300 < accepted < 9000, accepted         # the fuzz reaches both paths
    assert b.fw.rejected + accepted == 10000
    # whatever was accepted is a valid policy: decide() runs on it all day
    for pol in [b.fw.policy] + [p for p in b.fw.meters.policy if p]:
        assert S.check_policy(pol) == pol
        for h in range(0, 86400 * 7, 1800):
            R.decide(pol, R.Relays(1), 0, -1, True, START + h, START + h + 28800, 100)
    # the last good policy is enforced: end every override, refuse a bad
    # policy, run a meter out of credit
    b.push(P.COMMAND, op="policy", policy={"min_switch_s": 0})
    for i in range(4):
        b.push(P.COMMAND, op="relay", m=i, state="auto")
    b.push(P.COMMAND, op="policy", policy=BAD_FRIENDLY)
    b.credit(0, bal=1200, top=99)
    b.credit(1, bal=10 ** 7, top=99)
    b.run(30 * 60)
    assert not b.closed(0) and b.closed(1)


def _random_state(rng, good):
    st = copy.deepcopy(good)
    r = rng.random()
    if r < 0.1:
        return _random_json(rng)
    for _ in range(rng.randint(1, 4)):
        st = _mutate(st, rng)
    return st


def test_random_state_files_at_boot_never_stop_the_board(tmp_path):
    b = Board(tmp_path, meters=2, policy={"min_switch_s": 0})
    b.credit(0, bal=10 ** 6)
    b.run(60)
    good = b.fw.hal.read_json("/state.json")
    rng = random.Random(3)
    for k in range(300):
        st = _random_state(rng, good)
        b.fw.hal.write_json("/state.json", st)
        b.vc.power_cycle()
        b.fw.step()                                     # boot: never raises
        assert b.fw.booted
        S.check_policy(b.fw.policy)
    # after all that, the board still enforces credit
    b.credit(0, bal=600, top=100)
    b.run(15 * 60)
    assert not b.closed(0)


# ---- refusals cost no flash ------------------------------------------------------
def test_a_thousand_forged_downlinks_cost_a_handful_of_records_and_no_flash(tmp_path):
    b = Board(tmp_path, meters=2, flash="littlefs")
    b.run(60)
    old = b.seal(P.ACK, seq=0)
    b.deliver(old)                          # accepted once; replayed below
    fl = b.vc.flash
    seq0 = b.fw.journal.last_seq
    ops0 = fl.programs + fl.erases
    rng = random.Random(9)
    wrong = bytes(rng.randrange(256) for _ in range(32))
    for k in range(1000):
        r = k % 4
        if r == 0:
            data = b.seal(P.COMMAND, key=wrong, op="relay", m=0, state="open", until=2 ** 31)
        elif r == 1:
            data = b.seal(P.CREDIT, m=0, bal="lots", e=0)        # signed, bad body
        elif r == 2:
            data = bytes(rng.randrange(256) for _ in range(rng.randint(0, 200)))
        else:
            data = old                                           # a replay
        b.deliver(data)
    assert fl.programs + fl.erases == ops0, "refusing a message writes nothing"
    assert b.fw.rejected >= 1000
    b.run(20 * 60)                          # more than a record interval (15 min)
    grown = [r for r in b.records() if r[0] > seq0 and r[1] == P.KIND_EVENT]
    assert len(grown) <= 8, grown
    rej = b.rejections()
    assert rej["bad_mac"] == 250 and rej["bad_fields"] == 250 and rej["replay"] >= 250
    assert sum(rej.values()) == b.fw.rejected
