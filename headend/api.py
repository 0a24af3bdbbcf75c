"""REST API under /api (OpenAPI docs at /docs)."""
import json
import secrets
import time
from typing import Optional

from fastapi import APIRouter, Depends, HTTPException, Request
from fastapi.responses import PlainTextResponse
from sqlmodel import select

from concentrator import protocol
from concentrator import tariff as T

from . import downlink, ledger, provision
from .ingest import EV_COMMAND, EV_METER_LIST
from .models import Account, Concentrator, Event, LedgerEntry, Meter, Site, Tariff
from .schemas import (AccountIn, ConcentratorIn, MeterAccountIn, MeterIn, OverrideIn, PolicyIn, RechargeIn,
                      RekeyIn, SiteIn, TariffIn, TariffVersionIn)

router = APIRouter(prefix="/api")


def get_session(request: Request):
    with request.app.state.session_factory() as s:
        yield s


def _conflict(e):
    return HTTPException(status_code=409 if "exists" in str(e) or "taken" in str(e) or "already" in str(e)
                         else 404 if str(e).startswith("no ") else 400, detail=str(e))


def kwh_text(wh):
    if wh is None:
        return None
    return "%d.%03d" % (wh // 1000, wh % 1000)


def meter_rows(session, offline_after_s, now=None):
    now = int(now or time.time())
    concs = {c.id: c for c in session.exec(select(Concentrator)).all()}
    accounts = {a.id: a for a in session.exec(select(Account)).all()}
    rows = []
    for m in session.exec(select(Meter).order_by(Meter.concentrator_id, Meter.index)).all():
        c = concs.get(m.concentrator_id)
        a = accounts.get(m.account_id) if m.account_id is not None else None
        c_online = bool(c and c.online and c.last_seen is not None and now - c.last_seen <= offline_after_s)
        rows.append({
            "id": m.id, "meter_id": m.meter_id, "model": m.model, "index": m.index,
            "concentrator": c.dev if c else None, "concentrator_online": c_online,
            "account_id": m.account_id, "tenant": a.tenant if a else None,
            "balance_mu": a.balance_mu if a else None,
            "balance": ledger.format_mu(a.balance_mu) if a else None,
            "low_balance": bool(a and a.balance_mu < a.low_balance_threshold_mu),
            "last_energy_wh": m.last_energy_wh, "last_kwh": kwh_text(m.last_energy_wh),
            "last_power_w": m.last_power_w, "last_reading_ts": m.last_ts,
            "billed_energy_wh": m.billed_energy_wh,
            "relay_closed": m.relay_closed, "meter_online": m.online,
            "local_credit_mu": m.local_credit_mu,
            "last_seen": c.last_seen if c else None,
        })
    return rows


# ------------------------------------------------------------------- health
@router.get("/health", tags=["ops"])
def health(request: Request, session=Depends(get_session)):
    db_ok = True
    try:
        session.exec(select(1)).one()
    except Exception:
        db_ok = False
    st = request.app.state
    return {"status": "ok" if db_ok else "degraded", "db": db_ok,
            "ingest": st.ingest.stats.snapshot(),
            "mqtt": st.mqtt.snapshot() if st.mqtt is not None else None}


def metrics(request: Request):
    lines = []
    for k, v in sorted(request.app.state.ingest.stats.snapshot().items()):
        lines.append("# TYPE wk_ingest_%s_total counter" % k)
        lines.append("wk_ingest_%s_total %d" % (k, v))
    mq = request.app.state.mqtt
    if mq is not None:
        lines.append("wk_mqtt_connected %d" % (1 if mq.connected.is_set() else 0))
        lines.append("wk_mqtt_queue %d" % mq.queue.qsize())
    return PlainTextResponse("\n".join(lines) + "\n")


# -------------------------------------------------------------------- sites
@router.post("/sites", status_code=201, tags=["provisioning"])
def create_site(body: SiteIn, session=Depends(get_session)):
    try:
        site = provision.create_site(session, body.name, body.tz_offset_s)
    except provision.ProvisionError as e:
        raise _conflict(e)
    session.commit()
    return site


@router.get("/sites", tags=["provisioning"])
def list_sites(session=Depends(get_session)):
    return session.exec(select(Site).order_by(Site.id)).all()


# ------------------------------------------------------------ concentrators
def _conc_out(c, with_key=False):
    d = {"id": c.id, "dev": c.dev, "site_id": c.site_id, "acked_seq": c.acked_seq,
         "last_up_n": c.last_up_n, "last_down_n": c.last_down_n, "last_seen": c.last_seen,
         "online": c.online, "fw": c.fw, "boot": c.boot, "journal_last": c.journal_last,
         "pending": c.pending}
    if with_key:
        d["key_hex"] = c.key_hex
    return d


@router.post("/concentrators", status_code=201, tags=["provisioning"])
def create_concentrator(body: ConcentratorIn, session=Depends(get_session)):
    """Provision a device. The key (generated when omitted) is returned only here."""
    try:
        c = provision.create_concentrator(session, body.site_id, body.dev, body.key_hex)
    except provision.ProvisionError as e:
        raise _conflict(e)
    session.commit()
    return _conc_out(c, with_key=True)


@router.get("/concentrators", tags=["provisioning"])
def list_concentrators(session=Depends(get_session)):
    return [_conc_out(c) for c in session.exec(select(Concentrator).order_by(Concentrator.id)).all()]


# ------------------------------------------------------------------- meters
@router.post("/meters", status_code=201, tags=["provisioning"])
def create_meter(body: MeterIn, session=Depends(get_session)):
    try:
        m = provision.create_meter(session, body.concentrator_id, body.meter_id, body.model, body.index,
                                   body.account_id, body.opening_energy_wh)
    except provision.ProvisionError as e:
        raise _conflict(e)
    session.commit()
    return m


@router.get("/meters", tags=["meters"])
def list_meters(request: Request, session=Depends(get_session)):
    """Every meter with its account, balance, last reading, relay state and last-seen time,
    and `bus_errors`: the board's per-meter RS485 error counters since its boot (timeouts,
    crc, wrong_address, exceptions, offline = times it went offline), null until a status
    message carried them."""
    rows = meter_rows(session, request.app.state.settings.offline_after_s)
    errs = getattr(request.app.state.ingest, "bus_errors", {})
    for r in rows:
        r["bus_errors"] = errs.get(r["id"])
    return rows


def _parse_import(text):
    """JSON lines (one {"addr", "proto", "model", "id"?} per line, as the
    console's scan() prints them; blank lines and lines starting with # are
    skipped) or one JSON array of such objects."""
    text = text.strip()
    if text.startswith("["):
        try:
            items = json.loads(text)
        except ValueError as e:
            raise HTTPException(422, "not JSON: %s" % e)
        return [(k + 1, x) for k, x in enumerate(items)]
    out = []
    for n, line in enumerate(text.splitlines(), 1):
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        try:
            out.append((n, json.loads(line)))
        except ValueError as e:
            raise HTTPException(422, "line %d: not JSON: %s" % (n, e))
    return out


def _check_import_item(item):
    """-> (addr as the board's config wants it, proto, model, id or None), or raise ValueError."""
    from concentrator.profiles import PROFILES
    if not isinstance(item, dict):
        raise ValueError("not an object")
    extra = set(item) - {"addr", "proto", "model", "id"}
    if extra:
        raise ValueError("unknown field(s) %s" % ", ".join(sorted(extra)))
    proto, model, addr, mid = item.get("proto"), item.get("model"), item.get("addr"), item.get("id")
    if proto not in ("modbus", "dlt645"):
        raise ValueError("proto must be modbus or dlt645")
    prof = PROFILES.get(model) if isinstance(model, str) else None
    if prof is None:
        raise ValueError("unknown model %r (known: %s)" % (model, ", ".join(sorted(PROFILES))))
    if prof.get("proto") != proto:
        raise ValueError("model %s speaks %s, not %s" % (model, prof.get("proto"), proto))
    if proto == "modbus":
        if not isinstance(addr, int) or isinstance(addr, bool) or not 1 <= addr <= 247:
            raise ValueError("a Modbus addr is an integer 1..247")
    elif not (isinstance(addr, str) and len(addr) == 12 and addr.isdigit()) or addr == "999999999999":
        raise ValueError('a DL/T 645 addr is 12 digits as a string, e.g. "000000001234"')
    if mid is not None and not (isinstance(mid, str) and 1 <= len(mid.strip()) <= 64):
        raise ValueError("id must be a non-empty string (at most 64)")
    return addr, proto, model, mid.strip() if mid else None


@router.post("/concentrators/{dev}/meters/import", tags=["provisioning"])
async def import_meters(dev: str, request: Request, accounts: bool = False):
    """Create the meters a bus scan found (the console's `scan()` output: one JSON object per
    line, `{"addr": 1, "proto": "modbus", "model": "prepaid-int"}` or
    `{"addr": "000000001234", "proto": "dlt645", "model": "dlt645-2007"}`, optional `"id"`;
    a JSON array of them works too). Each new meter gets the next free index of the
    concentrator; meters without an id are named `<dev>-<addr>`. A meter whose id exists on
    this concentrator is skipped, so importing the same scan twice changes nothing; an id taken
    on another concentrator -> 409 and nothing is created. All-or-nothing: any bad line -> 422
    naming it.
    `?accounts=true` opens one account per new meter. Returns the created/skipped meters and
    `board_meters`, the entries for the board's /config.json `meters` list (index order)."""
    text = (await request.body()).decode("utf-8", "replace")
    items = _parse_import(text)
    if not items:
        raise HTTPException(422, "no meters in the import")
    if len(items) > 255:
        raise HTTPException(422, "at most 255 meters per concentrator")
    checked, errors = [], []
    for n, item in items:
        try:
            checked.append((n,) + _check_import_item(item))
        except ValueError as e:
            errors.append("item %d: %s" % (n, e))
    keys = [(c[2], str(c[1])) for c in checked]
    if len(set(keys)) != len(keys):
        errors.append("the same address appears twice")
    if errors:
        raise HTTPException(422, "; ".join(errors))
    with request.app.state.session_factory() as session:
        conc = session.exec(select(Concentrator).where(Concentrator.dev == dev)).first()
        if conc is None:
            raise HTTPException(404, "no concentrator %r" % dev)
        existing = {m.meter_id: m for m in session.exec(select(Meter).where(Meter.concentrator_id == conc.id))}
        created, skipped = [], []
        try:
            for n, addr, proto, model, mid in checked:
                mid = mid or "%s-%s" % (dev, addr)
                if mid in existing:
                    skipped.append({"id": mid, "addr": addr, "reason": "exists", "index": existing[mid].index})
                    continue
                acc_id = None
                if accounts:
                    acc_id = provision.create_account(session, conc.site_id, "Tenant " + mid, actor="import").id
                m = provision.create_meter(session, conc.id, mid, model, account_id=acc_id)
                existing[mid] = m
                created.append({"id": mid, "meter_pk": m.id, "index": m.index, "addr": addr, "proto": proto,
                                "model": model, "account_id": acc_id})
        except provision.ProvisionError as e:
            session.rollback()
            raise _conflict(e)
        session.add(Event(concentrator_id=conc.id, code=EV_METER_LIST, ts=int(time.time()),
                          message=("meters imported: %s" % json.dumps(
                              [[c["index"], c["id"], c["addr"], c["model"]] for c in created]))[:1000]))
        session.commit()
    board = [{"id": c["id"], "addr": c["addr"], "model": c["model"]}
             for c in sorted(created, key=lambda c: c["index"])]
    return {"concentrator": dev, "created": created, "skipped": skipped, "board_meters": board}


@router.put("/meters/{meter_pk}/account", tags=["provisioning"])
def set_meter_account(meter_pk: int, body: MeterAccountIn, request: Request, session=Depends(get_session)):
    try:
        m = provision.assign_meter(session, meter_pk, body.account_id)
    except provision.ProvisionError as e:
        raise _conflict(e)
    msgs = downlink.credit_for_meters(session, [m])
    session.commit()
    request.app.state.publish(msgs)
    return m


# ----------------------------------------------------------------- accounts
@router.post("/accounts", status_code=201, tags=["accounts"])
def create_account(body: AccountIn, session=Depends(get_session)):
    try:
        a = provision.create_account(session, body.site_id, body.tenant, body.low_balance_threshold_mu,
                                     body.tariff_id)
    except provision.ProvisionError as e:
        raise _conflict(e)
    session.commit()
    return a


@router.get("/accounts", tags=["accounts"])
def list_accounts(session=Depends(get_session)):
    return session.exec(select(Account).order_by(Account.id)).all()


def _get_or_404(session, model, pk, what):
    row = session.get(model, pk)
    if row is None:
        raise HTTPException(404, "no %s %d" % (what, pk))
    return row


def _account(session, account_id):
    return _get_or_404(session, Account, account_id, "account")


@router.get("/accounts/{account_id}", tags=["accounts"])
def get_account(account_id: int, session=Depends(get_session)):
    a = _account(session, account_id)
    return dict(a.model_dump(), balance=ledger.format_mu(a.balance_mu))


@router.post("/accounts/{account_id}/recharge", status_code=201, tags=["accounts"])
def recharge(account_id: int, body: RechargeIn, request: Request, session=Depends(get_session)):
    """Sell credit: one `recharge` ledger entry, then a `credit` push to every
    meter of the account."""
    _account(session, account_id)
    entry = ledger.post(session, account_id, "recharge", body.amount_mu, actor=body.actor.strip(),
                        note=body.note)
    msgs = downlink.credit_for_accounts(session, {account_id})
    session.commit()
    request.app.state.publish(msgs)
    return {"entry": entry.model_dump(), "balance_mu": entry.balance_after_mu,
            "balance": ledger.format_mu(entry.balance_after_mu), "credits_pushed": len(msgs)}


@router.get("/accounts/{account_id}/ledger", tags=["accounts"])
def account_ledger(account_id: int, limit: int = 200, before_id: Optional[int] = None,
                   session=Depends(get_session)):
    """Newest first. Each entry: kind, signed amount_mu, balance_after_mu, actor, reference."""
    a = _account(session, account_id)
    q = select(LedgerEntry).where(LedgerEntry.account_id == account_id)
    if before_id is not None:
        q = q.where(LedgerEntry.id < before_id)
    rows = session.exec(q.order_by(LedgerEntry.id.desc()).limit(max(1, min(limit, 1000)))).all()
    return {"account_id": a.id, "tenant": a.tenant, "balance_mu": a.balance_mu,
            "balance": ledger.format_mu(a.balance_mu), "ledger_sum_mu": ledger.ledger_sum(session, a.id),
            "entries": [dict(e.model_dump(), amount=ledger.format_mu(e.amount_mu)) for e in rows]}


# ------------------------------------------------------------------ tariffs
def _tariff_error(e):
    if isinstance(e, provision.TariffInvalid):
        return HTTPException(status_code=422, detail=str(e))
    return _conflict(e)


def _push_site_tariff(session, site_id):
    """After a tariff change: the site's versions to every board of the site."""
    return downlink.tariff_for_site(session, site_id) if site_id is not None else []


@router.post("/tariffs", status_code=201, tags=["tariffs"])
def create_tariff(body: TariffIn, request: Request, session=Depends(get_session)):
    """A tariff version: a full spec (docs/tariffs.md; `version`, `effective`,
    `tz_offset_s` are filled in when absent) or a flat price_mu_per_kwh.
    When `name` exists at the site this adds its next version. The spec is
    checked with concentrator.tariff.validate (422 with its message). With
    site_default (default) the site's boards get this tariff: a `tariff`
    message with every version is pushed to each of them."""
    try:
        t = provision.create_tariff(session, body.site_id, body.name, body.price_mu_per_kwh,
                                    effective=body.effective, kind=body.kind, spec=body.spec,
                                    site_default=body.site_default)
    except provision.ProvisionError as e:
        raise _tariff_error(e)
    return _commit_tariff_change(request, session, t, t)


def _commit_tariff_change(request, session, tariff, version):
    """Commit a new tariff (version); if it is the site's tariff, push the
    versions to every board of the site."""
    site_id = tariff.site_id
    msgs = (_push_site_tariff(session, site_id)
            if provision.site_tariff_name(session, site_id) == tariff.name else [])
    session.commit()
    request.app.state.publish(msgs)
    return dict(version.model_dump(), tariff_pushed=len(msgs))


@router.get("/tariffs", tags=["tariffs"])
def list_tariffs(session=Depends(get_session)):
    """Every tariff version row (a tariff = the rows with the same site and name)."""
    return session.exec(select(Tariff).order_by(Tariff.id)).all()


def _tariff_row(session, tariff_id):
    return _get_or_404(session, Tariff, tariff_id, "tariff")


@router.post("/tariffs/{tariff_id}/versions", status_code=201, tags=["tariffs"])
def add_tariff_version(tariff_id: int, body: TariffVersionIn, request: Request, session=Depends(get_session)):
    """Schedule a price change: a new version of the tariff that version row
    `tariff_id` belongs to, in force from `effective` (Unix seconds, normally
    a future local midnight; energy before it keeps the old prices). Pushed to
    the site's boards at once when it is the site's tariff."""
    row = _tariff_row(session, tariff_id)
    eff = body.effective if body.effective is not None else body.spec.get("effective")
    now = int(time.time())
    if isinstance(eff, int) and eff < now - 60:
        raise HTTPException(422, "effective %d is in the past (now %d): a version in force cannot change "
                                 "retroactively; give a future time" % (eff, now))
    try:
        t = provision.add_tariff_version(session, tariff_id, spec=body.spec, price_mu_per_kwh=body.price_mu_per_kwh,
                                         effective=body.effective)
    except provision.ProvisionError as e:
        raise _tariff_error(e)
    return _commit_tariff_change(request, session, row, t)


@router.get("/tariffs/{tariff_id}/versions", tags=["tariffs"])
def list_tariff_versions(tariff_id: int, session=Depends(get_session)):
    """Every version of the tariff (past, in force, scheduled), oldest first."""
    row = _tariff_row(session, tariff_id)
    rows = provision.tariff_rows(session, row.site_id, row.name)
    site = session.get(Site, row.site_id) if row.site_id is not None else None
    tz = site.tz_offset_s if site else 28800
    specs = [(r, provision.billing.row_spec(r, tz)) for r in rows]
    now = int(time.time())
    cur = T.spec_at([sp for _, sp in specs], now) if specs else None
    return {"name": row.name, "site_id": row.site_id,
            "site_default": provision.site_tariff_name(session, row.site_id) == row.name,
            "versions": [{"id": r.id, "version": sp["version"], "effective": sp["effective"], "kind": r.kind,
                          "in_force": sp is cur, "scheduled": sp["effective"] > now,
                          "summary": T.price_summary(sp), "spec": sp} for r, sp in specs]}


# ----------------------------------------------------------------- commands
def _conc_by_dev(session, dev, lock=False):
    q = select(Concentrator).where(Concentrator.dev == dev)
    c = session.exec(q.with_for_update() if lock else q).first()
    if c is None:
        raise HTTPException(404, "no concentrator %r" % dev)
    return c


def _fmt_time(t):
    return time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime(t))


def _command_event(session, conc, actor, message, meter=None, now=None):
    ev = Event(concentrator_id=conc.id, meter_index=meter.index if meter else None,
               meter_id=meter.id if meter else None, code=EV_COMMAND, ts=now or int(time.time()),
               actor=actor, message=(message + " (by %s)" % actor)[:500])
    session.add(ev)
    session.flush()
    return ev


@router.post("/meters/{meter_pk}/override", status_code=202, tags=["commands"])
def override_relay(meter_pk: int, body: OverrideIn, request: Request, session=Depends(get_session)):
    """Staff override of a meter's relay: `closed` keeps the power on, `open`
    forces it off, until `until` (Unix seconds); `auto` ends the override.
    Sends a signed `cmd` {op: "relay"} (expires in 5 minutes) and records an
    event with the actor."""
    m = _get_or_404(session, Meter, meter_pk, "meter")
    now = int(time.time())
    if body.state != "auto" and body.until <= now:
        raise HTTPException(422, "until %d is not in the future" % body.until)
    conc = session.get(Concentrator, m.concentrator_id)
    until = body.until if body.until is not None else 0
    msg = downlink.command(session, conc, "relay", ts=now, m=m.index, state=body.state, until=until)
    text = ("relay override ended on %s" % m.meter_id if body.state == "auto" else
            "relay override on %s: %s until %s" % (m.meter_id, body.state, _fmt_time(until)))
    ev = _command_event(session, conc, body.actor.strip(), text, meter=m, now=now)
    session.commit()
    sent = request.app.state.publish([msg])
    return {"event_id": ev.id, "message": ev.message, "published": sent,
            "cmd": {"op": "relay", "m": m.index, "state": body.state, "until": until, "exp": now + downlink.COMMAND_TTL_S}}


@router.post("/concentrators/{dev}/rekey", status_code=202, tags=["commands"])
def rekey(dev: str, body: RekeyIn, request: Request, session=Depends(get_session)):
    """Rotate the device key without sending it: a `cmd` {op: "rekey", nonce}
    (signed with the current key); both sides derive
    HMAC-SHA256(old key, "wk-rekey:" + nonce bytes). Downlinks use the new key
    from now on; uplinks are accepted under either key until the first valid
    one under the new key, which completes the switch (event 107). The
    command is sent again when the board says hello with the old key."""
    conc = _conc_by_dev(session, dev, lock=True)
    if conc.key_next_hex and not body.force:
        raise HTTPException(409, "a rekey of %s is pending since %s; it completes with the board's next "
                                 "uplink (force=true replaces it)" % (dev, _fmt_time(conc.rekey_started or 0)))
    now = int(time.time())
    nonce = secrets.token_hex(16)
    new_key = protocol.hmac_sha256(protocol.key_from_hex(conc.key_hex), b"wk-rekey:" + bytes.fromhex(nonce))
    msg = downlink.command(session, conc, "rekey", ts=now, old_key=True, nonce=nonce)
    conc.key_next_hex = new_key.hex()
    conc.rekey_nonce = nonce
    conc.rekey_started = now
    session.add(conc)
    ev = _command_event(session, conc, body.actor.strip(), "rekey of %s started (nonce %s)" % (dev, nonce), now=now)
    session.commit()
    sent = request.app.state.publish([msg])
    return {"event_id": ev.id, "nonce": nonce, "published": sent}


@router.post("/concentrators/{dev}/policy", status_code=202, tags=["commands"])
def set_policy(dev: str, body: PolicyIn, request: Request, session=Depends(get_session)):
    """Change the relay policy (docs/relay-policy.md) of meter index `m`, or
    of every meter of the board when `m` is absent: a `cmd` {op: "policy"}."""
    conc = _conc_by_dev(session, dev)
    meter = None
    if body.m is not None:
        meter = session.exec(select(Meter).where(Meter.concentrator_id == conc.id, Meter.index == body.m)).first()
        if meter is None:
            raise HTTPException(404, "%s has no meter index %d" % (dev, body.m))
    text = json.dumps(body.policy, sort_keys=True)
    if len(text) > 1500:
        raise HTTPException(422, "policy too large (%d bytes of JSON, at most 1500)" % len(text))
    now = int(time.time())
    fields = {"policy": body.policy}
    if body.m is not None:
        fields["m"] = body.m
    msg = downlink.command(session, conc, "policy", ts=now, **fields)
    ev = _command_event(session, conc, body.actor.strip(), "relay policy of %s: %s" % (
        meter.meter_id if meter else dev + " (every meter)", text), meter=meter, now=now)
    session.commit()
    sent = request.app.state.publish([msg])
    return {"event_id": ev.id, "message": ev.message, "published": sent}


# ------------------------------------------------------------------- events
@router.get("/events", tags=["meters"])
def list_events(limit: int = 100, code: Optional[int] = None, session=Depends(get_session)):
    """Newest first; `code` filters (10 low balance, 105 billing mismatch, 106 command...)."""
    q = select(Event)
    if code is not None:
        q = q.where(Event.code == code)
    return session.exec(q.order_by(Event.id.desc()).limit(max(1, min(limit, 1000)))).all()
