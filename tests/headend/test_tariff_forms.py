"""Tariffs as a manager edits them: the form becomes a version spec of
concentrator.tariff (flat, tiered, time of use with seasons), a month's
cost preview is worked out hour by hour and agrees with the hand-computed
figures, and a resale tariff above the official price plus the mark-up is
flagged before it is saved."""
import re

import pytest

from concentrator import tariff as T
from headend.api.deps import SESSION_COOKIE
from headend.models import AuditLog
from headend.services import properties
from headend.services.actor import system_actor
from headend.services.errors import Invalid
from headend.services.tariff_forms import PROFILES, preview, spec_from_form
from sqlmodel import select

TZ = 28800


def tou_form(**over):
    f = {"kind": "tou", "prices": {"valley": "0.3000", "flat": "0.6000", "peak": "0.9", "sharp": ""},
         "tiers": [], "seasons": [{"from": "01-01", "to": "12-31",
                                   "workday": [("00:00", "valley"), ("08:00", "flat"), ("20:00", "peak"), ("", "")],
                                   "weekend": [("", "")]}]}
    f.update(over)
    return f


def test_the_form_becomes_a_tariff_spec():
    flat = spec_from_form({"kind": "flat", "price": "0.5880"}, TZ)
    assert flat == {"version": 1, "effective": 0, "tz_offset_s": TZ, "price": 5880}
    tiered = spec_from_form({"kind": "tiered", "price": "0.5469",
                             "tiers": [{"from_kwh": "230", "add": "0.05"}, {"from_kwh": "400", "add": "0.3000"},
                                       {"from_kwh": "", "add": ""}]}, TZ)
    assert tiered["tiers"] == [{"from_wh": 0, "add": 0}, {"from_wh": 230000, "add": 500},
                               {"from_wh": 400000, "add": 3000}]
    two_seasons = tou_form(seasons=[
        {"from": "07-01", "to": "08-31", "workday": [("00:00", "valley"), ("10:00", "peak"), ("22:00", "valley")],
         "weekend": [("00:00", "valley"), ("08:00", "flat")]},
        {"from": "09-01", "to": "06-30", "workday": [("00:00", "valley"), ("08:00", "flat")], "weekend": []}])
    spec = spec_from_form(two_seasons, TZ)
    assert spec["prices"] == {"peak": 9000, "flat": 6000, "valley": 3000}      # bands in use only
    assert spec["tou"]["seasons"] == [{"from": "07-01", "to": "08-31", "weekday": "s0-workday", "weekend": "s0-weekend"},
                                      {"from": "09-01", "to": "06-30", "weekday": "s1-workday"}]
    # a summer afternoon is peak, an autumn one flat
    assert T.band_at(spec, T.days_from_civil(2027, 7, 14) * 86400 - TZ + 15 * 3600) == "peak"
    assert T.band_at(spec, T.days_from_civil(2027, 10, 14) * 86400 - TZ + 15 * 3600) == "flat"


@pytest.mark.parametrize("form, message", [
    ({"kind": "flat", "price": "0.6.0"}, "price"),
    ({"kind": "flat", "price": "1e3"}, "price"),
    ({"kind": "tiered", "price": "0.6"}, "needs its tiers"),
    ({"kind": "weird"}, "kind"),
    (tou_form(prices={"valley": "0.3"}), "give the price of flat, peak"),
    (tou_form(seasons=[{"from": "01-01", "to": "06-30", "workday": [("00:00", "valley")], "weekend": []}]),
     "season"),
    (tou_form(seasons=[{"from": "01-01", "to": "12-31", "workday": [("07:00", "valley")], "weekend": []}]), "00:00"),
    (tou_form(seasons=[{"from": "01-01", "to": "12-31", "workday": [("00:00", "noon")], "weekend": []}]), "band"),
])
def test_a_bad_form_says_what_is_wrong(form, message):
    with pytest.raises(Invalid, match=message):
        spec_from_form(form, TZ)


def test_the_cost_preview_agrees_with_the_hand_computed_month():
    flat = [spec_from_form({"kind": "flat", "price": "0.6000"}, TZ)]
    assert preview(flat, "home", 300_000, 2027, 1, TZ)["total_mu"] == 1_800_000             # 300 kWh x 0.60
    tiered = [spec_from_form({"kind": "tiered", "price": "0.6000", "tiers": [{"from_kwh": "230", "add": "0.05"}]}, TZ)]
    assert preview(tiered, "shop", 300_000, 2027, 1, TZ)["total_mu"] == 1_800_000 + 70 * 500   # 70 kWh + 0.05
    # the same every hour: 8 h valley, 12 h flat, 4 h peak a day -> 100, 150 and 50 kWh of 300
    tou = [spec_from_form(tou_form(), TZ)]
    r = preview(tou, "even", 300_000, 2027, 1, TZ)
    assert {b: v["wh"] for b, v in r["bands"].items()} == {"valley": 100_000, "flat": 150_000, "peak": 50_000}
    assert r["total_mu"] == 100 * 3000 + 150 * 6000 + 50 * 9000 and r["avg_mu_per_kwh"] == 5500
    night = preview(tou, "night", 300_000, 2027, 1, TZ)
    assert night["total_mu"] < r["total_mu"] < preview(tou, "home", 300_000, 2027, 1, TZ)["total_mu"]
    assert set(PROFILES) == {"home", "shop", "office", "even", "night"}


def test_a_resale_tariff_above_the_limit_is_flagged_before_it_is_saved(app, client, admin):
    with app.state.session_factory() as s:
        pid = properties.create_property(s, system_actor(s), "Resale Mall").id
        s.commit()
    r = admin.put("/api/properties/%d/settings" % pid, json={"grid_price_mu_per_kwh": 5000, "max_markup_bp": 1500})
    assert r.json()["max_price_mu_per_kwh"] == 5750
    body = {"property_id": pid, "name": "mall", "price_mu_per_kwh": 6000}
    r = admin.post("/api/tariffs", json=body)
    assert r.status_code == 422 and "above the resale limit 0.5750" in r.json()["detail"]
    pv = admin.post("/api/tariffs/preview", json={"property_id": pid, "spec": {"price": 6000}, "month": "2027-03",
                                                  "monthly_kwh": "100"}).json()
    assert pv["total"] == "60.00" and pv["over_resale_limit"]["limit_mu_per_kwh"] == 5750
    assert admin.post("/api/tariffs", json=dict(body, price_mu_per_kwh=5700)).status_code == 201
    r = admin.post("/api/tariffs", json=dict(body, name="mall-dear", confirm_over_limit=True))
    assert r.status_code == 201
    with app.state.session_factory() as s:
        row = s.exec(select(AuditLog).where(AuditLog.action == "tariff.create").order_by(AuditLog.id.desc())).first()
        assert row.after["over_resale_limit"]["highest_mu_per_kwh"] == 6000


def test_the_tariff_form_page_previews_and_saves_versions(app, client, admin):
    from tests.headend.conftest import make_user
    with app.state.session_factory() as s:
        pid = properties.create_property(s, system_actor(s), "Form Court").id
        s.commit()
    make_user(app, "form-manager", "manager", [pid], password="form-manager-pw")
    r = client.post("/login", data={"username": "form-manager", "password": "form-manager-pw"},
                    follow_redirects=False)
    client.cookies.set(SESSION_COOKIE, r.cookies[SESSION_COOKIE])
    page = client.get("/staff/tariffs", headers={"Accept-Language": "en"}).text
    csrf = re.search(r'name="csrf_token" value="([^"]+)"', page).group(1)
    form = {"csrf_token": csrf, "property_id": str(pid), "name": "tou-2027", "kind": "tou", "property_default": "1",
            "price_valley": "0.3", "price_flat": "0.6", "price_peak": "0.9", "s1_from": "01-01", "s1_to": "12-31",
            "s1_work_time_1": "00:00", "s1_work_band_1": "valley", "s1_work_time_2": "08:00",
            "s1_work_band_2": "flat", "s1_work_time_3": "20:00", "s1_work_band_3": "peak",
            "month": "2027-01", "monthly_kwh": "300", "profile": "even"}
    pv = client.post("/staff/tariffs/preview", data=form, headers={"HX-Request": "true", "Accept-Language": "en"})
    assert pv.status_code == 200 and "165.00" in pv.text
    r = client.post("/staff/tariffs", data=form, follow_redirects=False)
    assert r.status_code == 303, r.text[-500:]
    r = client.post("/staff/tariffs", data=dict(form, price_peak="1.0"), headers={"Accept-Language": "en"})
    assert r.status_code == 422 and "needs its effective date" in r.text
    r = client.post("/staff/tariffs", data=dict(form, price_peak="1.0", effective="2099-01-01"), follow_redirects=False)
    assert r.status_code == 303
    versions = admin.get("/api/tariffs", params={"property_id": pid}).json()
    assert [(v["name"], v["version"], v["spec"]["prices"]["peak"]) for v in versions] == [
        ("tou-2027", 1, 9000), ("tou-2027", 2, 10000)]
    client.cookies.clear()
