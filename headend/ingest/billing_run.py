"""Charging a new reading: through concentrator.tariff (services.billing),
the very arithmetic the board runs, posted as a `consumption` ledger entry
that names the board.

Whose reading it is: the meter's account, or the property's vacancy account
for a meter nobody occupies, so that no reading is charged to nobody. At
which price: the account's own tariff, else the property's. The meter's
accumulator belongs to one account and tariff (Meter.tariff_key); when the
meter changes account or the account changes tariff, billing starts a new
accumulator at that reading (services.billing.switch_state) instead of
pricing the old one's energy again at the new prices.

The board bills every meter with the property's tariff since commissioning;
once a meter's billing differs from that, the head-end keeps a copy of the
board's accumulator (Meter.board_tariff_state) and compares the board's
charged_mu with it, so a difference means a real disagreement."""
import logging

from sqlmodel import func, select

from concentrator import protocol

from ..core.events import EV_BILLING_MISMATCH, EV_LOW_BALANCE, EV_NOT_BILLED
from ..core.money import format_money
from ..models import Account, Event, Meter, MeterSwap
from ..models.ledger import CONSUMPTION
from ..services import billing, ledger, tariffs
from ..services.accounts import vacancy_account

log = logging.getLogger("headend.ingest")


class Biller:
    def __init__(self, stats):
        self.stats = stats

    def _cached(self, cache, key, load):
        if key not in cache:
            try:
                cache[key] = load()
            except ValueError as e:
                log.error("invalid tariff %r: %s", key, e)
                cache[key] = (None, [])
        return cache[key]

    def property_tariff(self, s, property_id, cache):
        """(name, versions) of the property's tariff: what its boards bill with."""
        return self._cached(cache, ("property", property_id), lambda: (
            tariffs.property_tariff_name(s, property_id), tariffs.property_versions(s, property_id)))

    def tariff_of(self, s, property_id, account, cache):
        """(name, versions) a meter of `account` is billed with."""
        if account.tariff_id is None:
            return self.property_tariff(s, property_id, cache)
        return self._cached(cache, ("tariff", account.tariff_id), lambda: tariffs.tariff_of_account(s, account))

    def last_swaps(self, s, conc, cache):
        """meter pk -> time of its latest swap (readings taken before it are
        covered by the old meter's final reading)."""
        key = ("swaps", conc.id)
        if key not in cache:
            cache[key] = dict(s.exec(select(MeterSwap.meter_id, func.max(MeterSwap.ts))
                                     .join(Meter, Meter.id == MeterSwap.meter_id)
                                     .where(Meter.concentrator_id == conc.id)
                                     .group_by(MeterSwap.meter_id)).all())
        return cache[key]

    def account_of(self, s, conc, m, cache):
        if m.account_id is not None:
            return s.get(Account, m.account_id)
        key = ("vacancy", conc.property_id)
        if key not in cache:
            cache[key] = vacancy_account(s, conc.property_id).id
        return s.get(Account, cache[key])

    def _not_billed(self, s, conc, m, rd, code, text):
        self.stats.inc("readings_not_billed")
        s.add(Event(concentrator_id=conc.id, meter_index=rd.meter_index, meter_id=m.id, code=code,
                    detail=rd.seq, ts=rd.ts or rd.received, message=text[:500]))

    def __call__(self, s, conc, m, rd, now, cache):
        """Bill one new reading. Returns the account id whose balance or
        credit reference changed."""
        if m is None:
            return None
        if m.billed_seq is not None and rd.seq <= m.billed_seq:
            return None          # older than what was billed: already covered (cumulative)
        if rd.flags & protocol.FLAG_MISSING:
            return None          # a gap, not zero: the next real reading covers it
        if rd.flags & protocol.FLAG_IMPLAUSIBLE:
            self._not_billed(s, conc, m, rd, protocol.EV_IMPLAUSIBLE,
                             "reading seq %d (%d Wh) flagged implausible by the board: not billed"
                             % (rd.seq, rd.energy_wh))
            return None
        swapped = self.last_swaps(s, conc, cache).get(m.id)
        if swapped is not None and rd.ts and rd.ts < swapped:
            self.stats.inc("readings_not_billed")
            return None          # the old meter's: its final reading at the swap covers it
        account = self.account_of(s, conc, m, cache)
        name, versions = self.tariff_of(s, conc.property_id, account, cache)
        if not versions:
            self.stats.inc("readings_not_billed")
            return None          # no price yet: keep the pointer, bill later
        board_name, board_versions = self.property_tariff(s, conc.property_id, cache)
        banded = len(rd.bands) >= 5 and rd.charged_mu is not None
        bands = rd.bands[:5] if banded else None
        # ts = 0: the board did not know the time; rate at the head-end's receive time
        t = rd.ts if rd.ts else rd.received or now
        state, mirror, key = billing.prepare(m, account.id, name, board_name, versions, t - 1)
        prev = m.billed_energy_wh
        amount = board_amount = 0
        if prev is not None and rd.energy_wh < prev:
            # meter replaced or reset: restart the baseline here, charge nothing
            self._not_billed(s, conc, m, rd, EV_NOT_BILLED,
                             "register went backwards on %s: %d Wh after %d Wh (seq %d): not billed, "
                             "billing restarts from this reading" % (m.meter_id, rd.energy_wh, prev, rd.seq))
            if bands is not None:
                for st in (state, mirror):
                    if st is not None:
                        st["reg"] = dict(zip(billing.BANDS, bands))
        else:
            try:
                amount = billing.bill_reading(versions, state, rd.energy_wh, bands, prev, t, rerate=not rd.ts)
                board_amount = amount
                if mirror is not None and board_versions:
                    # the board's first record of a meter is only its baseline
                    board_amount = billing.bill_reading(board_versions, mirror, rd.energy_wh, bands,
                                                        prev if mirror.get("reg") is not None else None, t,
                                                        rerate=not rd.ts)
            except ValueError as e:
                self._not_billed(s, conc, m, rd, EV_NOT_BILLED,
                                 "reading seq %d of %s cannot be billed: %s" % (rd.seq, m.meter_id, e))
                return None      # pointer and state unchanged: billed with a later reading
            self.stats.inc("readings_billed")
        new_ref = prev is None or (banded and m.board_charged_mu is None)
        if banded:
            first = m.tariff_state is None or m.tariff_state.get("reg") is None
            comparable = mirror is None or bool(board_versions)
            if (not first and comparable and rd.ts and m.board_charged_mu is not None
                    and rd.charged_mu - m.board_charged_mu != board_amount):
                board = rd.charged_mu - m.board_charged_mu
                s.add(Event(concentrator_id=conc.id, meter_index=m.index, meter_id=m.id,
                            code=EV_BILLING_MISMATCH, detail=rd.seq, ts=now,
                            values=[board_amount, board, rd.charged_mu],
                            message=("board and head-end disagree by %d mu on %s, reading seq %d: "
                                     "head-end charged %d mu, board %d mu (board charged_mu %d -> %d)"
                                     % (board - board_amount, m.meter_id, rd.seq, board_amount, board,
                                        m.board_charged_mu, rd.charged_mu))[:500]))
            m.board_charged_mu = rd.charged_mu
        m.tariff_state, m.board_tariff_state, m.tariff_key = state, mirror, key
        m.billed_seq, m.billed_energy_wh, m.billed_ts = rd.seq, rd.energy_wh, t
        rd.billed = True
        rd.billed_mu = amount
        s.add(m)
        s.add(rd)
        if amount == 0:
            # a first reference (e, c): the board gets its first credit
            return account.id if new_ref else None
        entry = ledger.post(s, account.id, CONSUMPTION, -amount, concentrator_id=conc.id, source="ingest",
                            reference="reading:%d/seq:%d" % (rd.id, rd.seq), created=now)
        before = entry.balance_after_mu + amount
        thr = account.low_balance_threshold_mu
        if thr and entry.balance_after_mu < thr <= before:
            s.add(Event(concentrator_id=conc.id, meter_index=m.index, meter_id=m.id, code=EV_LOW_BALANCE,
                        detail=entry.balance_after_mu, ts=now,
                        message="balance of %s below %s: %s" % (account.name, format_money(thr),
                                                               format_money(entry.balance_after_mu))))
        return account.id
