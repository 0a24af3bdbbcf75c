"""Tariff engine (firmware/concentrator/tariff.py): billing arithmetic shared
by the board and the head-end.

Property tests (hypothesis) for chunk invariance, version changes, cycle
rollover and tiers on top of time-of-use; an independent per-Wh oracle; spec
validation; and a cross-implementation test that runs thousands of random
cases in CPython and in the real MicroPython VM and demands identical money.
"""
import datetime
import json
import os
import random
import sys
from fractions import Fraction

import pytest
from hypothesis import HealthCheck, given, settings, strategies as st

from tests.support import ROOT

from concentrator import tariff as T  # noqa: E402

CN = 28800
BANDS = ["sharp", "peak", "flat", "valley"]


def local_midnight(y, m, d, tz=CN):
    """Unix time of local midnight of y-m-d at offset tz."""
    return T.days_from_civil(y, m, d) * 86400 - tz


JAN1 = local_midnight(2025, 1, 1)


def tou_spec(version=1, effective=JAN1, prices=None, tiers=None, cycle=None, tz=CN):
    s = {
        "version": version, "effective": effective, "tz_offset_s": tz,
        "name": "Residential TOU", "currency": "CNY",
        "prices": prices or {"sharp": 12000, "peak": 9000, "flat": 6000, "valley": 3000},
        "tou": {
            "days": {
                "workday": [["00:00", "valley"], ["08:00", "flat"], ["10:00", "peak"],
                            ["19:00", "sharp"], ["21:00", "flat"], ["23:00", "valley"]],
                "restday": [["00:00", "valley"], ["08:00", "flat"]],
            },
            "seasons": [
                {"from": "07-01", "to": "08-31", "weekday": "workday", "weekend": "restday"},
                {"from": "09-01", "to": "06-30", "weekday": "workday"},
            ],
            "holidays": ["2025-10-01"],
        },
    }
    if tiers is not None:
        s["tiers"] = tiers
    if cycle is not None:
        s["cycle"] = cycle
    return T.validate(s)


TIERS = [{"from_wh": 0, "add": 0}, {"from_wh": 230000, "add": 500},
         {"from_wh": 400000, "add": 3000}]


# ------------------------------------------------------------ random specs

def random_spec(rng, version, effective):
    """A random valid tariff version (flat, tiered, tou, tou+tiers)."""
    kind = rng.choice(["flat", "tiered", "tou", "tou_tiered"])
    tz = rng.choice([28800, 28800, 0, -18000, 19800])
    s = {"version": version, "effective": effective, "tz_offset_s": tz}
    if kind in ("flat", "tiered"):
        s["price"] = rng.randrange(0, 20001)
    else:
        names = rng.sample(BANDS, rng.randint(1, 4))
        s["prices"] = {b: rng.randrange(0, 20001) for b in names}
        days = {}
        for p in range(rng.randint(1, 3)):
            cuts = sorted(rng.sample(range(1, 96), rng.randint(0, 6)))
            prof = [["00:00", rng.choice(names)]]
            for c in cuts:
                m = c * 15
                prof.append(["%02d:%02d" % (m // 60, m % 60), rng.choice(names)])
            days["p%d" % p] = prof
        # seasons: split the year at sorted month-day boundaries (may wrap)
        all_md = [T.civil_from_days(d)[1:] for d in
                  range(T.days_from_civil(2000, 1, 1), T.days_from_civil(2001, 1, 1))]
        k = rng.randint(1, 3)
        if k == 1:
            seasons = [{"from": "01-01", "to": "12-31", "weekday": rng.choice(list(days))}]
        else:
            idx = sorted(rng.sample(range(366), k))
            seasons = []
            for i in range(k):
                a = all_md[idx[i]]
                b = all_md[(idx[(i + 1) % k] - 1) % 366]
                seasons.append({"from": "%02d-%02d" % a, "to": "%02d-%02d" % b,
                                "weekday": rng.choice(list(days))})
        for se in seasons:
            if rng.random() < 0.5:
                se["weekend"] = rng.choice(list(days))
        s["tou"] = {"days": days, "seasons": seasons}
        if rng.random() < 0.3:
            s["tou"]["weekend_days"] = sorted(rng.sample(range(7), rng.randint(0, 2)))
        if rng.random() < 0.3:
            s["tou"]["holidays"] = ["2025-%02d-%02d" % (rng.randint(1, 12), rng.randint(1, 28))
                                    for _ in range(rng.randint(1, 5))]
    if kind in ("tiered", "tou_tiered"):
        n = rng.randint(1, 4)
        froms = [0] + sorted(rng.sample(range(1, 600000), n - 1))
        s["tiers"] = [{"from_wh": f, "add": rng.randrange(0, 5001)} for f in froms]
    if rng.random() < 0.6:
        s["cycle"] = {"day": rng.randint(1, 28)}
        if rng.random() < 0.3:
            s["cycle"]["months"] = rng.choice([1, 2, 3, 6, 12])
            s["cycle"]["start_month"] = rng.randint(1, 12)
    return T.validate(s)


def random_versions(rng, start):
    n = rng.randint(1, 3)
    out = []
    eff = start
    for v in range(n):
        spec = random_spec(rng, v + 1, eff)
        out.append(spec)
        # next version at a local midnight (usual) or any second
        tz = spec["tz_offset_s"]
        eff += rng.randint(1, 60) * 86400
        if rng.random() < 0.7:
            eff = ((eff + tz) // 86400) * 86400 - tz
        else:
            eff += rng.randrange(86400)
    rng.shuffle(out)  # order of the list must not matter
    return out


def random_readings(rng, start, n, max_wh):
    """[(t, wh)] with increasing t from start."""
    t = start
    out = []
    for _ in range(n):
        t += rng.choice([1, 60, 900, 3600, 3600 * 7, 86400, 86400 * 9])
        out.append((t, rng.randint(0, max_wh)))
    return out


# ------------------------------------------------------------ oracle

def oracle_total(versions, readings):
    """Independent reference: every Wh costs (band price + tier add at the
    cycle position of that Wh) / 1000 mu, exactly (Fraction); each segment
    (version x cycle) is rounded down once.  Readings must be in time order."""
    total = 0
    seg_key = None
    seg_cost = Fraction(0)
    cyc_key = None
    cyc_wh = 0
    for t, wh, band in readings:
        spec = T.spec_at(versions, t)
        loc = t + spec["tz_offset_s"]
        day = loc // 86400
        y, m, d = T.civil_from_days(day)
        cd, n, sm = (spec.get("cycle") or {}).get("day", 1), \
            (spec.get("cycle") or {}).get("months", 1), (spec.get("cycle") or {}).get("start_month", 1)
        # cycle start by brute force: walk back day by day to a cycle-start day
        dd = day
        while True:
            yy, mm, d2 = T.civil_from_days(dd)
            if d2 == cd and (mm - sm) % n == 0:
                break
            dd -= 1
        key = (spec["version"], spec["effective"], dd)
        if key != seg_key:
            total += seg_cost.numerator // seg_cost.denominator
            seg_cost = Fraction(0)
            seg_key = key
            if dd != cyc_key:
                cyc_key = dd
                cyc_wh = 0
        if spec.get("tou"):
            price = spec["prices"][band]
        else:
            price = spec["price"]
        tiers = spec.get("tiers") or [{"from_wh": 0, "add": 0}]
        # walk the energy through the tier boundaries
        left = wh
        while left:
            i = max(k for k in range(len(tiers)) if tiers[k]["from_wh"] <= cyc_wh)
            room = tiers[i + 1]["from_wh"] - cyc_wh if i + 1 < len(tiers) else left
            step = min(room, left)
            seg_cost += Fraction(step * (price + tiers[i]["add"]), 1000)
            cyc_wh += step
            left -= step
    total += seg_cost.numerator // seg_cost.denominator
    return total


def bill(versions, readings, state=None):
    state = state or T.new_state()
    mu = 0
    for t, wh, band in readings:
        c = T.charge(versions, state, band, wh, t)
        assert c >= 0
        mu += c
    assert mu == T.total_charged(state)
    return mu, state


def with_bands(versions, readings):
    return [(t, wh, T.band_at(versions, t)) for t, wh in readings]


# ------------------------------------------------------------ unit facts

def test_date_arithmetic_matches_calendar():
    epoch = datetime.date(1970, 1, 1)
    for d in list(range(-719162, 2932896, 997)) + list(range(-400, 20000)):
        date = epoch + datetime.timedelta(days=d)
        assert T.civil_from_days(d) == (date.year, date.month, date.day)
        assert T.days_from_civil(date.year, date.month, date.day) == d
        assert T.weekday(d) == date.weekday()


def test_bands_follow_local_time_weekends_seasons_and_holidays():
    s = tou_spec()
    wed = local_midnight(2025, 1, 8)  # a Wednesday in winter
    assert [T.band_at(s, wed + h * 3600) for h in (0, 7, 8, 10, 18, 19, 21, 23)] == \
        ["valley", "valley", "flat", "peak", "peak", "sharp", "flat", "valley"]
    # 07:59:59 local is valley, 08:00:00 is flat (boundary belongs to the new band)
    assert T.band_at(s, wed + 8 * 3600 - 1) == "valley"
    assert T.band_at(s, wed + 8 * 3600) == "flat"
    # UTC midnight is 08:00 in China: the band depends on the site offset
    assert T.band_at(s, T.days_from_civil(2025, 1, 8) * 86400) == "flat"
    # summer weekend uses the rest-day profile, winter weekend the workday one
    sat_summer = local_midnight(2025, 7, 12)
    assert T.band_at(s, sat_summer + 11 * 3600) == "flat"
    assert T.band_at(s, local_midnight(2025, 7, 14) + 11 * 3600) == "peak"  # Monday
    assert T.band_at(s, local_midnight(2025, 1, 11) + 11 * 3600) == "peak"  # winter Saturday
    # a listed holiday in a season with no weekend profile still uses 'weekday'
    assert T.band_at(s, local_midnight(2025, 10, 1) + 11 * 3600) == "peak"
    s2 = tou_spec()
    s2["tou"]["seasons"][1]["weekend"] = "restday"
    assert T.band_at(s2, local_midnight(2025, 10, 1) + 11 * 3600) == "flat"   # holiday Wed
    assert T.band_at(s2, local_midnight(2025, 10, 2) + 11 * 3600) == "peak"   # Thursday
    # flat tariffs have one band
    flat = T.validate({"version": 1, "effective": 0, "tz_offset_s": CN, "price": 5880})
    assert T.band_at(flat, wed) == "flat"


def test_worked_example_tou_plus_tiers_matches_docs():
    """The example of docs/tariffs.md: 500 kWh in January, on a TOU tariff with
    tier surcharges on the month total."""
    s = tou_spec(tiers=TIERS)
    st_ = T.new_state()
    t = local_midnight(2025, 1, 10) + 12 * 3600
    mu = 0
    mu += T.charge(s, st_, "sharp", 40000, t)    # 40 kWh x 1.20 = 48.00
    mu += T.charge(s, st_, "peak", 120000, t)    # 120 kWh x 0.90 = 108.00
    mu += T.charge(s, st_, "flat", 190000, t)    # 190 kWh x 0.60 = 114.00
    mu += T.charge(s, st_, "valley", 150000, t)  # 150 kWh x 0.30 = 45.00
    # tiers on 500 kWh: 170 kWh x 0.05 = 8.50, 100 kWh x 0.30 = 30.00
    assert mu == 3535000  # 353.50 CNY
    assert T.cost_of(s, {"sharp": 40000, "peak": 120000, "flat": 190000,
                         "valley": 150000}) == 3535000
    assert T.cycle_wh(st_) == 500000
    # next kWh at peak costs 0.90 + 0.30 surcharge
    assert T.marginal_price(s, st_, local_midnight(2025, 1, 10) + 11 * 3600) == 12000
    # a pure tiered tariff (the published 0.5469 / 0.5969 / 0.8469)
    tiered = T.validate({"version": 1, "effective": 0, "tz_offset_s": CN, "price": 5469,
                         "tiers": TIERS, "currency": "CNY"})
    assert T.cost_of(tiered, {"flat": 500000}) == 230 * 5469 + 170 * 5969 + 100 * 8469
    text = T.price_summary(tiered)
    assert "230-400 kWh: 0.5969 CNY per kWh" in text
    assert "above 400 kWh: 0.8469 CNY per kWh" in text


def test_sub_mu_fractions_are_not_lost_across_readings():
    # 1 Wh at 0.5469/kWh is 5.469 mu: a naive per-reading round-down would
    # charge 5 mu each time and lose 0.469 mu per reading
    s = T.validate({"version": 1, "effective": 0, "tz_offset_s": CN, "price": 5469})
    st_ = T.new_state()
    charges = [T.charge(s, st_, "flat", 1, JAN1 + i) for i in range(1000)]
    assert sum(charges) == 5469
    assert set(charges) == {5, 6}


def test_version_change_at_midnight_bills_each_side_at_its_own_version():
    v1 = T.validate({"version": 1, "effective": JAN1, "tz_offset_s": CN, "price": 5000})
    mid = local_midnight(2025, 3, 1)
    v2 = T.validate({"version": 2, "effective": mid, "tz_offset_s": CN, "price": 7000})
    versions = [v2, v1]
    st_ = T.new_state()
    assert T.charge(versions, st_, "flat", 10000, mid - 1) == 50000   # 23:59:59 -> v1
    assert T.charge(versions, st_, "flat", 10000, mid) == 70000       # 00:00:00 -> v2
    assert st_["ver"] == 2
    # a late reading stamped before the change is billed in the open segment (v2)
    assert T.charge(versions, st_, "flat", 1000, mid - 3600) == 7000
    # tiers continue across a mid-cycle version change: the cycle total counts
    v1t = dict(v1, tiers=[{"from_wh": 0, "add": 0}, {"from_wh": 15000, "add": 1000}])
    v2t = dict(v2, tiers=[{"from_wh": 0, "add": 0}, {"from_wh": 15000, "add": 2000}])
    mid15 = local_midnight(2025, 3, 15)
    v2t["effective"] = mid15
    st_ = T.new_state()
    assert T.charge([v1t, v2t], st_, "flat", 10000, mid15 - 60) == 50000
    # 10 kWh more under v2: 5 kWh in tier 1, 5 kWh in tier 2 (+0.2/kWh)
    assert T.charge([v1t, v2t], st_, "flat", 10000, mid15 + 60) == 70000 + 5 * 2000


def test_cycle_rollover_resets_tiers_on_the_cycle_day_in_local_time():
    s = T.validate({"version": 1, "effective": 0, "tz_offset_s": CN, "price": 5000,
                    "tiers": [{"from_wh": 0, "add": 0}, {"from_wh": 100000, "add": 2000}],
                    "cycle": {"day": 15}})
    st_ = T.new_state()
    before = local_midnight(2025, 2, 15) - 1      # 14th 23:59:59 local
    assert T.charge(s, st_, "flat", 150000, before) == 100 * 5000 + 50 * 7000
    # 15th 00:30 local is still the 14th in UTC, but a new cycle here
    after = local_midnight(2025, 2, 15) + 1800
    assert T.charge(s, st_, "flat", 50000, after) == 50 * 5000
    assert T.cycle_wh(st_) == 50000
    assert T.cycle_start(s, after) == local_midnight(2025, 2, 15)
    assert T.cycle_start(s, before) == local_midnight(2025, 1, 15)
    # annual cycle starting in January (e.g. an annual ladder)
    y = T.validate(dict(s, cycle={"day": 1, "months": 12, "start_month": 1}))
    assert T.cycle_start(y, local_midnight(2025, 12, 31) + 3600) == local_midnight(2025, 1, 1)
    assert T.cycle_start(y, local_midnight(2026, 1, 1)) == local_midnight(2026, 1, 1)
    q = T.validate(dict(s, cycle={"day": 10, "months": 3, "start_month": 2}))
    assert T.cycle_start(q, local_midnight(2025, 5, 9)) == local_midnight(2025, 2, 10)
    assert T.cycle_start(q, local_midnight(2025, 5, 10)) == local_midnight(2025, 5, 10)
    assert T.cycle_start(q, local_midnight(2025, 1, 20)) == local_midnight(2024, 11, 10)


def test_registers_path_equals_band_path_and_survives_meter_reset():
    s = tou_spec(tiers=TIERS)
    a = T.new_state()
    b = T.new_state()
    regs = {"sharp": 1000, "peak": 5000, "flat": 0, "valley": 70000}
    t = local_midnight(2025, 1, 6)
    assert T.charge_registers(s, a, regs, t) == 0     # baseline only
    rng = random.Random(7)
    total_a = total_b = 0
    for i in range(200):
        t += 600
        band = T.band_at(s, t)
        wh = rng.randint(0, 4000)
        regs = dict(regs)
        regs[band] += wh
        total_a += T.charge_registers(s, a, regs, t)
        total_b += T.charge(s, b, band, wh, t)
    assert total_a == total_b > 0
    # meter replaced: registers restart near zero -> no charge, new baseline
    new = {"sharp": 0, "peak": 0, "flat": 10, "valley": 0}
    assert T.charge_registers(s, a, new, t + 600) == 0
    new2 = dict(new, flat=1010)
    assert T.charge_registers(s, a, new2, t + 1200) == T.charge(s, b, "flat", 1000, t + 1200)


@pytest.mark.parametrize("seed", range(40))
def test_several_bands_at_once_cost_what_one_charge_per_band_costs(seed):
    """charge_registers bills what every band gained in one step: the same
    mu and the same accumulator as one charge() per band, through version
    changes, cycle rollovers, tiers and late readings."""
    rng = random.Random(seed)
    versions = [random_spec(rng, 1, JAN1)]
    if rng.random() < 0.6:
        versions.append(random_spec(rng, 2, JAN1 + rng.randrange(86400, 86400 * 90)))
    a, b = T.new_state(), T.new_state()
    regs = {x: rng.randrange(0, 10 ** 6) for x in BANDS}
    t = JAN1 + 3600
    T.charge_registers(versions, a, dict(regs), t)
    b["reg"] = dict(regs)
    T.charge(versions, b, "flat" if "flat" in T.spec_at(versions, t).get("prices", {"flat": 0}) else
             next(iter(T.spec_at(versions, t)["prices"])), 0, t)
    for _ in range(120):
        t += rng.choice([900, 900, 3600, 86400 * 5, -7200])
        gained = {x: rng.randrange(0, 6000) if rng.random() < 0.6 else 0 for x in BANDS}
        regs = {x: regs[x] + gained[x] for x in BANDS}
        try:
            got = T.charge_registers(versions, a, dict(regs), t)
        except ValueError:
            return            # a band without a price at t: refused (the next test)
        want = 0
        for x in BANDS:
            if gained[x]:
                want += T.charge(versions, b, x, gained[x], t)
        b["reg"] = dict(regs)
        assert got == want
        assert a == b


def test_a_band_without_a_price_leaves_the_registers_as_they_were():
    s = T.validate({"version": 1, "effective": 0, "tz_offset_s": CN,
                    "prices": {"flat": 6000, "valley": 3000},
                    "tou": {"days": {"d": [["00:00", "valley"], ["08:00", "flat"]]},
                            "seasons": [{"from": "01-01", "to": "12-31", "weekday": "d"}]}})
    st_ = T.new_state()
    regs = {"flat": 100, "valley": 200, "peak": 0}
    T.charge_registers(s, st_, regs, JAN1 + 9 * 3600)
    before = json.dumps(st_, sort_keys=True)
    with pytest.raises(ValueError, match="band 'peak' has no price"):
        T.charge_registers(s, st_, {"flat": 150, "valley": 200, "peak": 10}, JAN1 + 10 * 3600)
    assert json.dumps(st_, sort_keys=True) == before    # flat's 50 Wh are not half-billed either
    assert T.charge_registers(s, st_, {"flat": 150, "valley": 200, "peak": 0}, JAN1 + 10 * 3600) == 50 * 6000 // 1000


def test_unknown_band_and_bad_energy_are_refused():
    s = tou_spec()
    st_ = T.new_state()
    with pytest.raises(ValueError, match="band 'super' has no price in tariff version 1"):
        T.charge(s, st_, "super", 10, JAN1)
    for bad in (-1, 1.5, "10", True):
        with pytest.raises(ValueError, match="non-negative int of Wh"):
            T.charge(s, st_, "flat", bad, JAN1)
    assert T.total_charged(st_) == 0


BAD_SPECS = [
    ({"effective": 0, "tz_offset_s": CN, "price": 1}, "version must be an integer"),
    ({"version": 1, "tz_offset_s": CN, "price": 1}, "missing 'effective'"),
    ({"version": 1, "effective": 0, "price": 1}, "missing 'tz_offset_s'"),
    ({"version": 1, "effective": 0, "tz_offset_s": CN}, "missing 'price'"),
    ({"version": 1, "effective": 0, "tz_offset_s": CN, "price": 5.88}, "price must be an integer"),
    ({"version": 1, "effective": 0, "tz_offset_s": CN, "price": -1}, "price must be >= 0"),
    ({"version": 1, "effective": 0, "tz_offset_s": CN, "price": 1, "teirs": []}, "unknown key 'teirs'"),
    ({"version": 1, "effective": 0, "tz_offset_s": CN, "price": 1,
      "tiers": [{"from_wh": 10, "add": 0}]}, "tiers[0].from_wh must be 0"),
    ({"version": 1, "effective": 0, "tz_offset_s": CN, "price": 1,
      "tiers": [{"from_wh": 0, "add": 0}, {"from_wh": 0, "add": 5}]},
     "tiers[1].from_wh must be greater than tiers[0].from_wh"),
    ({"version": 1, "effective": 0, "tz_offset_s": CN, "price": 1,
      "tiers": [{"from_wh": 0, "price": 0}]}, "tiers[0] must be"),
    ({"version": 1, "effective": 0, "tz_offset_s": CN, "price": 1, "cycle": {"day": 31}},
     "cycle.day must be <= 28"),
    ({"version": 1, "effective": 0, "tz_offset_s": CN, "price": 1, "cycle": {"months": 5}},
     "cycle.months must divide 12"),
    ({"version": 1, "effective": 0, "tz_offset_s": CN, "prices": {"flat": 1}},
     "'prices' is for time-of-use tariffs"),
]


def _tou_bad(mutate):
    s = json.loads(json.dumps(tou_spec()))
    mutate(s)
    return s


BAD_TOU = [
    (lambda s: s.pop("prices"), "missing 'prices'"),
    (lambda s: s.__setitem__("price", 5), "takes 'prices' per band"),
    (lambda s: s["tou"]["days"]["workday"].__setitem__(0, ["01:00", "valley"]),
     "tou.days['workday'] must start at \"00:00\""),
    (lambda s: s["tou"]["days"]["workday"].__setitem__(2, ["07:00", "peak"]),
     "tou.days['workday'][2]: times must increase"),
    (lambda s: s["tou"]["days"]["workday"].__setitem__(1, ["8:00", "flat"]),
     "start must be a string like HH:MM"),
    (lambda s: s["tou"]["days"]["workday"].__setitem__(1, ["24:00", "flat"]),
     "is not a time of day"),
    (lambda s: s["tou"]["days"]["restday"].__setitem__(1, ["08:00", "shoulder"]),
     "band 'shoulder' has no price"),
    (lambda s: s["tou"]["seasons"][1].__setitem__("to", "06-29"),
     "06-30 is covered by 0 seasons"),
    (lambda s: s["tou"]["seasons"][1].__setitem__("from", "08-31"),
     "08-31 is covered by 2 seasons"),
    (lambda s: s["tou"]["seasons"][0].__setitem__("weekend", "holiday"),
     "weekend must name a profile in tou.days"),
    (lambda s: s["tou"]["seasons"][0].__setitem__("to", "02-30"), "'02-30' is not a date"),
    (lambda s: s["tou"].__setitem__("holidays", ["2025/10/01"]), "like YYYY-MM-DD"),
    (lambda s: s["tou"].__setitem__("weekend_days", [7]), "weekend_days item must be <= 6"),
]


@pytest.mark.parametrize("spec,msg", BAD_SPECS + [(_tou_bad(m), msg) for m, msg in BAD_TOU])
def test_bad_specs_are_refused_with_a_clear_message(spec, msg):
    with pytest.raises(ValueError) as ei:
        T.validate(spec)
    assert msg in str(ei.value)
    if "version" in spec:
        assert str(ei.value).startswith("tariff version 1: ")


def test_versions_list_validation_and_selection():
    v1 = T.validate({"version": 1, "effective": 1000, "tz_offset_s": CN, "price": 1})
    v2 = T.validate({"version": 2, "effective": 5000, "tz_offset_s": CN, "price": 2})
    with pytest.raises(ValueError, match="tariff version 1 appears twice"):
        T.validate_versions([v1, dict(v1)])
    with pytest.raises(ValueError, match="non-empty list"):
        T.validate_versions([])
    assert T.validate_versions([v2, v1]) == [v2, v1]
    assert T.spec_at([v2, v1], 999) is v1      # before all: earliest version
    assert T.spec_at([v2, v1], 4999) is v1
    assert T.spec_at([v2, v1], 5000) is v2
    with pytest.raises(ValueError, match="no tariff versions"):
        T.spec_at([], 0)


def test_specs_are_plain_json_and_state_persists_as_json():
    s = tou_spec(tiers=TIERS)
    assert json.loads(json.dumps(s)) == s
    st_ = T.new_state()
    T.charge(s, st_, "peak", 1234, JAN1 + 36000)
    again = json.loads(json.dumps(st_))
    assert again == st_
    assert T.charge(s, again, "peak", 1234, JAN1 + 36001) == T.charge(s, st_, "peak", 1234, JAN1 + 36001)


# ------------------------------------------------------------ properties

seeds = st.integers(min_value=0, max_value=2 ** 32 - 1)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(seed=seeds)
def test_chunk_invariance_one_step_per_reading_per_wh_and_oracle(seed):
    rng = random.Random(seed)
    versions = random_versions(rng, JAN1 - rng.randrange(86400 * 30))
    readings = with_bands(versions, random_readings(rng, JAN1, rng.randint(1, 40), 400))
    per_reading, state = bill(versions, readings)

    # per watt-hour: every reading split into 1 Wh charges
    st_wh = T.new_state()
    per_wh = 0
    for t, wh, band in readings:
        for _ in range(wh):
            per_wh += T.charge(versions, st_wh, band, 1, t)
    assert per_wh == per_reading

    # random splits, with the state persisted as JSON between every charge
    st_js = T.new_state()
    split = 0
    for t, wh, band in readings:
        while True:
            part = rng.randint(0, wh)
            st_js = json.loads(json.dumps(st_js))
            split += T.charge(versions, st_js, band, part, t)
            wh -= part
            if not wh:
                break
    assert split == per_reading

    # one step per segment: each (version, cycle) segment's energy summed by
    # band and charged in one go at the segment's last reading
    groups = []
    for t, wh, band in readings:
        spec = T.spec_at(versions, t)
        key = (spec["version"], T.cycle_start_day(spec, t))
        if not groups or groups[-1][0] != key:
            groups.append([key, t, {}])
        groups[-1][1] = t
        groups[-1][2][band] = groups[-1][2].get(band, 0) + wh
    st_one = T.new_state()
    one = sum(T.charge(versions, st_one, b, w, g[1]) for g in groups for b, w in g[2].items())
    assert one == per_reading
    assert st_one["wh"] == state["wh"] == sum(r[1] for r in readings)

    assert per_reading == oracle_total(versions, readings)


@settings(max_examples=100, deadline=None)
@given(seed=seeds)
def test_month_of_heavy_tou_tiered_use_matches_oracle(seed):
    """A month at 15-minute readings (~2900 charges, up to ~1 MWh) on a
    TOU + tiers tariff: one step per band equals reading by reading."""
    rng = random.Random(seed)
    s = tou_spec(tiers=TIERS, cycle={"day": rng.randint(1, 28)},
                 prices={b: rng.randrange(1000, 20000) for b in BANDS})
    start = local_midnight(2025, rng.randint(1, 12), rng.randint(1, 28))
    start = T.cycle_start(s, start)
    readings = []
    t = start
    end = T.cycle_start(s, start + 40 * 86400) - 1
    while t + 900 <= end:
        t += 900
        readings.append((t, rng.randint(0, 350), T.band_at(s, t)))
    total, state = bill(s, readings)
    by_band = {}
    for _, wh, band in readings:
        by_band[band] = by_band.get(band, 0) + wh
    assert total == T.cost_of(s, by_band)
    assert total == oracle_total(s, readings)
    assert T.cycle_wh(state) == sum(by_band.values())


# ------------------------------------------------------------ CPython vs MicroPython

def make_cases(n, seed):
    rng = random.Random(seed)
    cases = []
    for _ in range(n):
        start = JAN1 - rng.randrange(86400 * 40) + rng.randrange(-3, 3) * 365 * 86400
        versions = random_versions(rng, start)
        raw = random_readings(rng, start + rng.randrange(86400), rng.randint(1, 30),
                              rng.choice([5, 500, 5000, 200000]))
        # some readings are late (out of order), bands sometimes given by a meter
        events = []
        for t, wh in raw:
            if rng.random() < 0.05:
                t -= rng.randrange(86400 * 3)
            events.append([t, wh])
        cases.append({"versions": versions, "events": events,
                      "days": [rng.randrange(-800000, 3000000) for _ in range(3)]})
    return cases


RUN_CASES = r"""
try:
    import ujson as json
except ImportError:
    import json
from concentrator import tariff as T


def run_case(c):
    vs = c["versions"]
    st = T.new_state()
    rg = T.new_state()
    regs = {}
    out = []
    for ev in c["events"]:
        t = ev[0]
        wh = ev[1]
        band = T.band_at(vs, t)
        mu = T.charge(vs, st, band, wh, t)
        regs[band] = regs.get(band, 0) + wh
        mu2 = T.charge_registers(vs, rg, regs, t)
        out.append([band, mu, mu2, T.marginal_price(vs, st, t), T.cycle_start(vs, t)])
    d = [[T.civil_from_days(x), T.weekday(x)] for x in c["days"]]
    summ = [T.price_summary(s) for s in vs]
    return {"ev": out, "state": st, "total": T.total_charged(st), "cyc": T.cycle_wh(st),
            "d": d, "summary": summ}


def main(path):
    with open(path) as f:
        cases = json.load(f)
    res = []
    for c in cases:
        try:
            res.append(run_case(c))
        except ValueError as e:
            res.append({"error": str(e)})
    return res
"""


def _normalise(obj):
    return json.loads(json.dumps(obj))  # tuples -> lists


def test_cpython_and_micropython_bill_identically():
    from sim.mpvm import run_micropython

    cases = make_cases(3000, seed=20250101)
    # a few invalid specs: both sides must refuse them with the same message
    bad = [spec for spec, msg in BAD_SPECS]
    ns = {}
    exec(RUN_CASES, ns)  # the very same driver code, run by CPython
    expected = _normalise([ns["run_case"](c) for c in cases])
    bad_msgs = []
    for spec in bad:
        try:
            T.validate(spec)
            bad_msgs.append(None)
        except ValueError as e:
            bad_msgs.append(str(e))
    script = RUN_CASES + r"""
import sys
for r in main("/cases.json"):
    sys.stdout.write(json.dumps(r))  # one line per case (one huge dumps is slow)
    sys.stdout.write("\n")
bad = []
with open("/bad.json") as f:
    for spec in json.load(f):
        try:
            T.validate(spec)
            bad.append(None)
        except ValueError as e:
            bad.append(str(e))
sys.stdout.write(json.dumps(bad))
sys.stdout.write("\n")
"""
    out = run_micropython(script, files={"/cases.json": json.dumps(cases),
                                         "/bad.json": json.dumps(bad)}, timeout=300)
    lines = out.splitlines()
    got = {"res": [json.loads(x) for x in lines[:-1]], "bad": json.loads(lines[-1])}
    assert len(got["res"]) == len(expected) == 3000
    n_events = 0
    for i, (e, g) in enumerate(zip(expected, got["res"])):
        assert g == e, "case %d differs: %s" % (i, json.dumps(cases[i])[:2000])
        n_events += len(e.get("ev", ()))
    assert n_events > 30000
    assert sum(e["total"] for e in expected) > 0
    assert got["bad"] == bad_msgs
    assert all(m for m in bad_msgs)


def test_docs_spec_example_is_valid_and_gives_the_worked_example_total():
    import re
    with open(os.path.join(ROOT, "docs", "tariffs.md"), encoding="utf-8") as f:
        text = f.read()
    spec = json.loads(re.findall(r"```json\n(.*?)```", text, re.S)[0])
    T.validate(spec)
    assert spec["effective"] == JAN1
    st_ = T.new_state()
    t = local_midnight(2025, 1, 10) + 12 * 3600
    mu = sum(T.charge(spec, st_, b, w, t) for b, w in
             [("sharp", 40000), ("peak", 120000), ("flat", 190000), ("valley", 150000)])
    assert T.fmt_money(mu) == "353.5000"
    assert "353.50" in text
