"""One concentrator running the real firmware with simulated meters on a
virtual clock, offline (no broker answers): the tests hand it downlink
messages signed as the head-end signs them (`push`), or any bytes at all
(`deliver`), exactly as the MQTT link would during a step."""
from concentrator import protocol as P
from sim.brokers import free_port
from sim.load import ConstantLoad
from sim.site import Site

PRICE = 6000                      # mu/kWh
TARIFF = [{"version": 1, "effective": 0, "tz_offset_s": 28800, "price": PRICE}]
START = 1793462400 + 8 * 3600     # 2026-11-01 08:00 local (a Sunday)


class Board:
    def __init__(self, tmp_path, policy=None, watts=1200, start=START, meters=2, flash="host",
                 state=None, **site_kw):
        self.site = Site(concentrators=1, meters=meters, broker=("127.0.0.1", free_port()),
                         workdir=str(tmp_path), start_unix=start, tariff=TARIFF, flash=flash,
                         **site_kw)
        self.vc = self.site.concentrators[0]
        if policy is not None:
            self.vc.cfg["policy"] = policy
        if state is not None:
            self.vc.fw.hal.write_json("/state.json", state)
        if policy is not None or state is not None:
            self.vc.power_on()
        self.n = 0
        for sm in self.vc.meters:
            sm.load = ConstantLoad(watts)
        self.site.run(120, tick_s=1)      # boot, first polls (baselines)

    @property
    def fw(self):
        return self.vc.fw

    def seal(self, kind, key=None, **fields):
        self.n += 1
        body = P.message(self.fw.dev, self.n, kind, self.fw.hal.time(), **fields)
        return P.seal(body, key or self.fw.key)

    def deliver(self, data):
        """Bytes arriving on the board's downlink topic."""
        self.fw._on_message(P.topic_down(self.fw.dev), data)

    def push(self, kind, key=None, **fields):
        self.deliver(self.seal(kind, key, **fields))

    def credit(self, i=0, bal=0, top=1):
        """Sync meter i so that its local credit is `bal` now (the head-end's
        balance is at the last record: add what was used since)."""
        m = self.fw.meters[i]
        self.push(P.CREDIT, m=i, bal=bal + m.credit.provisional, e=m.last_energy,
                  c=m.credit.charged, top=top)
        assert self.fw.credit_of(i) == bal

    def closed(self, i=0):
        sm = self.vc.meters[i]
        return sm.relay_closed and sm.supply_closed

    def records(self):
        return self.fw.journal.pending(100000)

    def events(self, code, meter=None):
        return [r for r in self.records()
                if r[1] == P.KIND_EVENT and r[4][0] == code and (meter is None or r[2] == meter)]

    def rejections(self):
        """{reason: count} from the EV_MSG_REJECTED events in the journal."""
        out = {}
        for r in self.events(P.EV_MSG_REJECTED):
            reason = P.REJECT_REASONS[r[4][1]]
            out[reason] = out.get(reason, 0) + (r[4][2] if len(r[4]) > 2 else 1)
        return out

    def run(self, s):
        self.site.run(s, tick_s=1)
