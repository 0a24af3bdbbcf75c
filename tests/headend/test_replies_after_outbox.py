"""A worker's replies leave after the outbox's messages of the same boards
with lower counters (a desk sale's credit sealed just before the batch), and
never after those with higher ones: one look at the outbox for a whole batch
(transport/outbox.py lowest_counters, pending_below; MqttService.reply)."""
import json
import secrets

from sqlmodel import select

from concentrator import protocol
from headend.models import Concentrator
from headend.services.seed import seed_site
from headend.transport import downlink, outbox


def sealed(dev, n):
    return protocol.topic_down(dev), downlink.seal_raw(json.dumps(protocol.message(dev, n, protocol.CREDIT, 1790000000)).encode(), b"k" * 32)


def test_only_the_lower_counters_of_the_batchs_boards_go_first(engine):
    from headend.core import db
    sf = db.session_factory(engine)
    with sf() as s:
        seed_site(s, "Replies", [{"dev": d, "key_hex": secrets.token_hex(32), "meters": [
            {"id": d + "-m", "model": "sdm120"}]} for d in ("ra", "rb", "rc")], tariff_price_mu_per_kwh=6000)
        s.commit()
        ids = dict(s.exec(select(Concentrator.dev, Concentrator.id)).all())
        # in the outbox: ra 5 and 9, rb 3, rc 1 (rc has no reply in this batch)
        outbox.queue(s, [sealed("ra", 5), sealed("ra", 9), sealed("rb", 3), sealed("rc", 1)])
        s.commit()
        replies = [[sealed("ra", 7), sealed("ra", 8)], [sealed("rb", 2)], [sealed("ra", 10)]]
        below = outbox.lowest_counters(m for msgs in replies for m in msgs)
        assert below == {"ra": 7, "rb": 2}
        rows = outbox.pending_below(s, below)
        assert [(r.dev, r.n) for r in rows] == [("ra", 5)]          # not ra 9, not rb 3, not rc 1
        assert outbox.pending_below(s, {}) == []
        # a partitioned worker looks only at its own boards
        mine = (ids["ra"] % 2, 2)
        assert [(r.dev, r.n) for r in outbox.pending_below(s, below, partition=mine)] == [("ra", 5)]
        other = ((ids["ra"] + 1) % 2, 2)
        assert outbox.pending_below(s, below, partition=other) == []
        # with every board's reply above what waits, all of it goes first, in counter order per board
        rows = outbox.pending_below(s, {"ra": 100, "rb": 100, "rc": 100})
        assert [(r.dev, r.n) for r in rows] == sorted([("ra", 5), ("ra", 9), ("rb", 3), ("rc", 1)],
                                                       key=lambda x: (ids[x[0]], x[1]))
