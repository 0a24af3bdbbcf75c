"""Billing for the head-end, through concentrator.tariff: the very module (and
arithmetic) the board runs, so the board's local credit and the ledger agree
to the mu (docs/tariffs.md, docs/protocol.md "rd").

Tariffs in the database: a tariff is every `Tariff` row with the same
(site_id, name), one row per version; `Tariff.spec` is the full version spec.
The site's boards get the versions of `Site.tariff_name`; an account may use
another tariff (`Account.tariff_id`: any version row of it).

Per meter the head-end keeps a `tariff.new_state()` accumulator
(`Meter.tariff_state`). For a reading at time ts with the full value layout
`[energy_wh, power_w, flags, charged_mu, sharp, peak, flat, valley,
deep_valley]` (see bill_reading):

    charge = tariff.charge_registers(versions, state, {band: Wh}, ts - 1)

The first such reading of a meter is the registers' baseline; the energy
between the meter's previous billed register (its `opening_energy_wh` at
commissioning, or the last reading of older firmware) and that first reading
is billed just before the baseline with
`tariff.charge(versions, state, band_at(versions, ts - 1), delta, ts - 1)`,
so nothing consumed after commissioning is free. Readings of older firmware
(three values) bill the energy delta the same way, in the band at ts - 1.
A reading with ts = 0 (board did not know the time; it put every Wh in its
most expensive band) is re-rated at the head-end's receive time: the energy
its registers gained is billed in the band in force at receive time - 1.

Nothing here sums rounded per-reading prices: every mu comes out of the
tariff state, so billing is chunk-invariant.
"""
import copy
import functools

from concentrator import tariff as T

BANDS = T.BANDS
LEGACY_KEYS = ("kind",)   # {"kind": "flat", "price": N}: the spec form of head-end 0.1


class TariffSpecError(ValueError):
    pass


def flat_spec(price_mu_per_kwh, version=1, effective=0, tz_offset_s=28800):
    return {"version": int(version), "effective": int(effective), "tz_offset_s": int(tz_offset_s),
            "price": int(price_mu_per_kwh)}


def normalize_spec(spec, version, effective, tz_offset_s, price_mu_per_kwh=None):
    """A version spec ready for the database and the boards: fills in
    `version`, `effective`, `tz_offset_s` when absent, converts the legacy
    {"kind": "flat", "price": N} form, validates with tariff.validate.
    Raises TariffSpecError with the tariff module's message."""
    if spec is None or spec == {}:
        if price_mu_per_kwh is None:
            raise TariffSpecError("give a tariff spec or price_mu_per_kwh")
        return T.validate(flat_spec(price_mu_per_kwh, version, effective, tz_offset_s))
    if not isinstance(spec, dict):
        raise TariffSpecError("tariff spec must be a JSON object")
    s = copy.deepcopy(spec)
    if "kind" in s:
        kind = s.pop("kind")
        if kind != "flat":
            raise TariffSpecError("legacy spec kind %r: give a full tariff spec (docs/tariffs.md)" % (kind,))
        if "price" not in s and price_mu_per_kwh is not None:
            s["price"] = price_mu_per_kwh
    s.setdefault("version", version)
    s.setdefault("effective", effective)
    s.setdefault("tz_offset_s", tz_offset_s)
    try:
        return T.validate(s)
    except ValueError as e:
        raise TariffSpecError(str(e))


def kind_of(spec):
    k = "tou" if spec.get("tou") else "flat"
    if spec.get("tiers"):
        k = "tou+tiers" if k == "tou" else "tiered"
    return k


def row_spec(row, tz_offset_s=28800):
    """The version spec of a Tariff row (rows of head-end 0.1 had {} or the
    legacy flat form: converted from the columns)."""
    spec = row.spec or {}
    if spec.get("version") == row.version and "tz_offset_s" in spec and "kind" not in spec:
        return spec
    return normalize_spec(spec, row.version, row.effective, tz_offset_s, row.price_mu_per_kwh)


def versions_of(rows, tz_offset_s=28800):
    """Tariff rows (one tariff) -> list of version specs, by (effective, version)."""
    return [row_spec(r, tz_offset_s) for r in sorted(rows, key=lambda r: (r.effective, r.version, r.id or 0))]


def tariff_spec(versions):
    """The `spec` of a `tariff` downlink: the list of versions, checked with
    tariff.validate_versions; None when there is none."""
    if not versions:
        return None
    return T.validate_versions(list(versions))


def bill_reading(versions, state, energy_wh, regs, prev_energy_wh, t, rerate=False):
    """Charge one reading taken at Unix time t (already re-rated when the
    board sent ts = 0). Mutates `state`; returns mu (>= 0).

    regs: the five cumulative band registers ({band: Wh}, values[4:9]; not
    changed, so one dict serves the head-end's and the board's accumulator)
    or None for a legacy three-value reading. prev_energy_wh: the meter's last billed
    register (opening_energy_wh at commissioning) or None. The caller has
    checked energy_wh >= prev_energy_wh.

    rerate: the board sent ts = 0 (it did not know the time and put every Wh
    in its most expensive band): t is the head-end's receive time, and the
    energy the registers gained is billed in the band in force at t - 1
    instead of the bands the board guessed (the registers still become the
    new baseline)."""
    tb = t - 1
    if regs is not None:
        mu = 0
        if state.get("reg") is None:
            # first reading with band registers: bill what was consumed since
            # commissioning (or since the last legacy reading), then baseline
            if prev_energy_wh is not None and energy_wh > prev_energy_wh:
                mu += T.charge(versions, state, T.band_at(versions, tb), energy_wh - prev_energy_wh, tb)
            mu += T.charge_registers(versions, state, regs, tb)   # baseline: 0
            return mu
        if rerate:
            last = state["reg"]
            wh = 0
            for b in regs:
                p = last.get(b)
                if p is not None and regs[b] > p:
                    wh += regs[b] - p
            mu = T.charge(versions, state, T.band_at(versions, tb), wh, tb)
            state["reg"] = dict(regs)
            return mu
        return T.charge_registers(versions, state, regs, tb)
    if prev_energy_wh is None or energy_wh <= prev_energy_wh:
        return 0
    return T.charge(versions, state, T.band_at(versions, tb), energy_wh - prev_energy_wh, tb)


def switch_state(state, versions, t, keep_cycle):
    """A new accumulator for a meter whose billing changes account or tariff
    at time t: the band registers stay the baseline (nothing consumed is
    lost or billed twice); the new segment starts empty. keep_cycle (the
    same account, another tariff): the energy already used in the billing
    cycle still counts for the tiers when the new tariff's cycle started on
    the same day; a new account (a new tenant) starts its cycle at zero."""
    new = T.new_state()
    new["reg"] = copy.deepcopy(state.get("reg"))
    if keep_cycle and state.get("ver") is not None and versions:
        if T.cycle_start_day(T.spec_at(versions, t), t) == state.get("cyc"):
            new["cwh"] = T.cycle_wh(state)
    return new


def copy_state(x):
    """A copy of an accumulator (tariff.new_state()) that billing may change
    while `x` stays as it was. concentrator.tariff changes an accumulator's
    two dicts in place (`e`, the open segment's energy per band, and `reg`,
    the last band registers: ints, both) and only ever assigns its other
    keys: copying those two dicts with the accumulator is enough, and ~6x
    cheaper than copying every container on the ingest's hot path."""
    out = x.copy()
    e, reg = out.get("e"), out.get("reg")      # what concentrator.tariff changes in place
    if type(e) is dict:
        out["e"] = e.copy()
    if type(reg) is dict:
        out["reg"] = reg.copy()
    return out
# what the next charges of an accumulator depend on (not the totals `done` and `wh`)
_CHARGING = ("e", "cwh", "seg", "cyc", "ver", "eff", "reg")      # the likeliest to differ first


def apart(state, mirror):
    """The board's accumulator copy (mirror) while it would charge otherwise
    than the head-end's (state); None once they agree on everything the next
    charges depend on (a new billing cycle brings them together again): the
    meter is then billed once per reading, not twice."""
    if mirror is None:
        return None
    for k in _CHARGING:
        if mirror.get(k) != state.get(k):
            return mirror
    return None


def prepare(meter, account_id, name, board_name, versions, t):
    """The accumulators a meter is billed with at time t for `account_id` at
    tariff `name` (the board's tariff: `board_name`): -> (state, mirror,
    key), copies to change and store back. A changed account or tariff
    starts a new accumulator (switch_state); the board's own accumulator is
    kept apart (mirror) from the moment the meter's billing differs from it
    (None while it does not)."""
    state = copy_state(meter.tariff_state) if meter.tariff_state else T.new_state()
    mirror = copy_state(meter.board_tariff_state) if meter.board_tariff_state is not None else None
    key = tariff_key(account_id, name)
    switched = bool(meter.tariff_key and meter.tariff_key != key and meter.tariff_state)
    if mirror is None and (switched or name != board_name):
        mirror = copy_state(state)      # until now the meter's accumulator was the board's
    if switched:
        state = switch_state(state, versions, t, keep_cycle=same_account(meter.tariff_key, key))
    return state, mirror, key


@functools.lru_cache(maxsize=65536)
def tariff_key(account_id, tariff_name):
    """What a meter's accumulator belongs to: an account and a tariff
    (asked for every reading billed: a site's few thousand keys kept)."""
    return "a%d/%s" % (account_id, tariff_name or "")


def same_account(key_a, key_b):
    return (key_a or "").split("/", 1)[0] == (key_b or "").split("/", 1)[0]


# --------------------------------------------------------------------------------
# helpers that price a flat tariff directly
def cost_mu(energy_wh, price_mu_per_kwh):
    return energy_wh * price_mu_per_kwh // 1000
