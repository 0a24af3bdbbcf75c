"""Firmware rollouts through the whole stack (issue 14): the head-end in its
own process, Mosquitto, three simulated boards running the real firmware on
littlefs. A bundle goes to one board first and, once it passed its health
check, to the others; every board then shows the new version. A bundle that
fails its health check on the first board rolls back there and stops the
rollout before any other board is offered it."""
import time

from sqlmodel import select

from concentrator import ota_format as F
from headend.models import Rollout, RolloutBoard
from sim.stack import Stack
from tests.firmware.test_ota import bundles, provisioned  # noqa: F401


class Throttle:
    """Ask the head-end at most every `every` wall seconds while the site steps."""

    def __init__(self, ask, every=0.5):
        self.ask, self.every, self.last, self.value = ask, every, 0.0, None

    def __call__(self):
        if time.monotonic() - self.last >= self.every:
            self.last = time.monotonic()
            self.value = self.ask()
        return self.value


def _rollout(st, rid):
    r = st.http.get("/api/rollouts/%d" % rid)
    assert r.status_code == 200, r.text
    return r.json()


def test_rollout_one_board_then_all_and_a_failing_one_stops(bundles):  # noqa: F811
    with Stack(broker="mosquitto", concentrators=3, meters=1, flash="littlefs", keepalive_s=5) as st:
        for vc in st.site.concentrators:
            provisioned(vc, bundles["old"])
            vc.power_cycle()
        versions = Throttle(lambda: {c["dev"]: c["fw"] for c in st.http.get("/api/concentrators").json()})
        assert st.site.settle(30, until=lambda: set(versions().values()) == {"0.1.0"}), versions.value
        manifest, data = bundles["new"]
        r = st.http.post("/api/firmware", files={"manifest": ("manifest.json", manifest),
                                                 "bundle": ("bundle.bin", data)})
        assert r.status_code == 201, r.text
        assert r.json()["fw"] == "0.2.0" and r.json()["id"] == F.bundle_id(manifest)
        # a bundle whose data does not match its manifest is refused
        bad = st.http.post("/api/firmware", files={"manifest": ("manifest.json", manifest),
                                                   "bundle": ("bundle.bin", data[:-1] + b"x")})
        assert bad.status_code == 422 and "does not match" in bad.json()["detail"]
        r = st.http.post("/api/rollouts", json={"bundle_id": F.bundle_id(manifest), "property_id": st.pid,
                                                "stages": [1, "100%"], "health_s": 20})
        assert r.status_code == 201, r.text
        rid = r.json()["id"]
        assert [b["state"] for b in r.json()["boards"]] == ["offered"]
        seen_states = set()

        def progress():
            ro = _rollout(st, rid)
            seen_states.update((b["dev"], b["state"]) for b in ro["boards"])
            return ro
        view = Throttle(progress)
        assert st.site.settle(150, until=lambda: view()["state"] == "done"), view.value
        first = view.value["boards"][0]["dev"]
        assert (first, "confirmed") in seen_states
        # the others were offered only once the first had confirmed
        with st.session() as s:
            rows = s.exec(select(RolloutBoard).where(RolloutBoard.rollout_id == rid)).all()
            assert sorted((r.stage, r.state) for r in rows) == [(0, "confirmed"), (1, "confirmed"), (1, "confirmed")]
        assert st.site.settle(30, until=lambda: set(versions().values()) == {"0.2.0"}), versions.value
        page = st.client("stack-admin")

        # the next one fails its health check on the first board: its meters go silent after the switch
        def on_boot(v):
            if (v.boot_pointer or {}).get("trial"):
                for sm in v.meters:
                    sm.dead = True
        target = [vc for vc in st.site.concentrators if vc.dev == first][0]
        target.on_boot = on_boot
        manifest2, data2 = bundles["old"]
        assert st.http.post("/api/firmware", files={"manifest": ("manifest.json", manifest2),
                                                    "bundle": ("bundle.bin", data2)}).status_code == 201
        r = st.http.post("/api/rollouts", json={"bundle_id": F.bundle_id(manifest2), "property_id": st.pid,
                                                "stages": [1, "100%"], "health_s": 10})
        assert r.status_code == 201, r.text
        rid2 = r.json()["id"]
        assert r.json()["boards"][0]["dev"] == first
        view2 = Throttle(lambda: _rollout(st, rid2))
        assert st.site.settle(150, until=lambda: view2()["state"] == "stopped"), view2.value
        ro = view2.value
        assert [b["state"] for b in ro["boards"]] == ["rolled_back"] and "failed" in ro["why"]
        for sm in target.meters:
            sm.dead = False
        st.site.settle(20, until=lambda: versions()[first] == "0.2.0")
        assert versions() == {vc.dev: "0.2.0" for vc in st.site.concentrators}, "nobody else got the bad one"
        with st.session() as s:
            assert s.get(Rollout, rid2).state == "stopped"
        # the staff page shows each board's version and the stopped rollout
        with st.client("stack-admin") as c:
            assert c.get("/api/rollouts").status_code == 200
        page.close()
