"""Charging a new reading: through concentrator.tariff (services.billing),
the very arithmetic the board runs, posted as a `consumption` ledger entry
that names the board."""
import copy
import logging

from concentrator import protocol, tariff

from ..core.events import EV_BILLING_MISMATCH, EV_LOW_BALANCE, EV_NOT_BILLED
from ..core.money import format_money
from ..models import Account, Event
from ..models.ledger import CONSUMPTION
from ..services import billing, ledger, tariffs

log = logging.getLogger("headend.ingest")


class Biller:
    def __init__(self, stats):
        self.stats = stats

    def versions(self, s, conc, account, cache):
        """Tariff versions for a meter: its account's tariff, else the property's."""
        key = ("tariff", account.tariff_id) if account is not None and account.tariff_id is not None \
            else ("property", conc.property_id)
        if key not in cache:
            try:
                cache[key] = tariffs.versions_for_account(s, account, conc.property_id)
            except ValueError as e:
                log.error("%s: invalid tariff %r: %s", conc.dev, key, e)
                cache[key] = []
        return cache[key]

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
        account = s.get(Account, m.account_id) if m.account_id is not None else None
        versions = self.versions(s, conc, account, cache)
        if not versions:
            self.stats.inc("readings_not_billed")
            return None          # no price yet: keep the pointer, bill later
        banded = len(rd.bands) >= 5 and rd.charged_mu is not None
        bands = rd.bands[:5] if banded else None
        # ts = 0: the board did not know the time; rate at the head-end's receive time
        t = rd.ts if rd.ts else rd.received or now
        state = copy.deepcopy(m.tariff_state) if m.tariff_state else tariff.new_state()
        prev = m.billed_energy_wh
        amount = 0
        if prev is not None and rd.energy_wh < prev:
            # meter replaced or reset: restart the baseline here, charge nothing
            self._not_billed(s, conc, m, rd, EV_NOT_BILLED,
                             "register went backwards on %s: %d Wh after %d Wh (seq %d): not billed, "
                             "billing restarts from this reading" % (m.meter_id, rd.energy_wh, prev, rd.seq))
            if bands is not None:
                state["reg"] = dict(zip(billing.BANDS, bands))
        else:
            try:
                amount = billing.bill_reading(versions, state, rd.energy_wh, bands, prev, t, rerate=not rd.ts)
            except ValueError as e:
                self._not_billed(s, conc, m, rd, EV_NOT_BILLED,
                                 "reading seq %d of %s cannot be billed: %s" % (rd.seq, m.meter_id, e))
                return None      # pointer and state unchanged: billed with a later reading
            self.stats.inc("readings_billed")
        new_ref = prev is None or (banded and m.board_charged_mu is None)
        if banded:
            first = m.tariff_state is None or m.tariff_state.get("reg") is None
            if (not first and rd.ts and m.board_charged_mu is not None
                    and rd.charged_mu - m.board_charged_mu != amount):
                board = rd.charged_mu - m.board_charged_mu
                s.add(Event(concentrator_id=conc.id, meter_index=m.index, meter_id=m.id,
                            code=EV_BILLING_MISMATCH, detail=rd.seq, ts=now,
                            values=[amount, board, rd.charged_mu],
                            message=("board and head-end disagree by %d mu on %s, reading seq %d: "
                                     "head-end charged %d mu, board %d mu (board charged_mu %d -> %d)"
                                     % (board - amount, m.meter_id, rd.seq, amount, board,
                                        m.board_charged_mu, rd.charged_mu))[:500]))
            m.board_charged_mu = rd.charged_mu
        m.tariff_state = state
        m.billed_seq, m.billed_energy_wh, m.billed_ts = rd.seq, rd.energy_wh, t
        rd.billed = True
        rd.billed_mu = amount
        s.add(m)
        s.add(rd)
        if account is None:
            return None
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
