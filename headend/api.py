"""REST API under /api (OpenAPI docs at /docs)."""
import time
from typing import Optional

from fastapi import APIRouter, Depends, HTTPException, Request
from fastapi.responses import PlainTextResponse
from sqlmodel import select

from . import downlink, ledger, provision
from .models import Account, Concentrator, Event, LedgerEntry, Meter, Site, Tariff
from .schemas import AccountIn, ConcentratorIn, MeterAccountIn, MeterIn, RechargeIn, SiteIn, TariffIn

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
    """Every meter with its account, balance, last reading, relay state and last-seen time."""
    return meter_rows(session, request.app.state.settings.offline_after_s)


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


def _account(session, account_id):
    a = session.get(Account, account_id)
    if a is None:
        raise HTTPException(404, "no account %d" % account_id)
    return a


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
@router.post("/tariffs", status_code=201, tags=["tariffs"])
def create_tariff(body: TariffIn, session=Depends(get_session)):
    """A new version of a (flat) tariff, effective from `effective`."""
    try:
        t = provision.create_tariff(session, body.site_id, body.name, body.price_mu_per_kwh,
                                    effective=body.effective, kind=body.kind, spec=body.spec)
    except provision.ProvisionError as e:
        raise _conflict(e)
    session.commit()
    return t


@router.get("/tariffs", tags=["tariffs"])
def list_tariffs(session=Depends(get_session)):
    return session.exec(select(Tariff).order_by(Tariff.id)).all()


# ------------------------------------------------------------------- events
@router.get("/events", tags=["meters"])
def list_events(limit: int = 100, session=Depends(get_session)):
    return session.exec(select(Event).order_by(Event.id.desc()).limit(max(1, min(limit, 1000)))).all()
