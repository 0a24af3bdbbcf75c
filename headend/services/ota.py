"""Firmware rollouts (OTA): a bundle goes to one board, then a share of the
property's boards, then all of them; each board reports where its update
stands (hello "ota", uplink "otast"); a rollout whose boards fail their
health check stops before the next boards are offered. The bundle format,
its signature and chunks are concentrator.ota_format, the very module the
boards check them with.

    bundle = add_bundle(session, actor, manifest_text, data)
    rollout = start(session, actor, RolloutCreate(...))     # offers to stage 0
    msgs = on_board_report(session, conc, ota_body, now)   # from the ingest
"""
import hashlib
import json
import math

from sqlmodel import select

from concentrator import ota_format as F
from concentrator import protocol

from ..core import permissions as P
from ..core.events import EV_ROLLOUT_STOPPED
from ..models import Concentrator, Event, FirmwareBundle, Rollout, RolloutBoard, now_s
from ..models.firmware import BOARD_DONE, BOARD_FAILED, DONE, PAUSED, RUNNING, STOPPED
from ..transport import downlink, outbox
from . import audit
from .errors import Conflict, Invalid, NotFound

WINDOW = 8               # chunks sent per request of a board (its OTA_WINDOW)
MAX_DOWNLOADING = 20     # boards downloading at once per rollout (the site's Wi-Fi, the broker)
SILENT_S = 15 * 60       # a board silent this long after staging (beyond health_s) has failed
ACTIVE = ("waiting", "offered", "download", "staged", "trial", "switched")


# ------------------------------------------------------------------ bundles
def add_bundle(session, actor, manifest_text, data):
    """Store a bundle (the manifest and the concatenated files, as
    `tools/ota.py build` makes them) after checking every file's size and
    SHA-256 against the manifest."""
    actor.check(P.DEVICES_WRITE)
    try:
        m = F.parse_manifest(manifest_text)
    except ValueError as e:
        raise Invalid("manifest: %s" % e)
    pos = 0
    for path, size, sha in m["files"]:
        part = data[pos:pos + size]
        if len(part) != size or hashlib.sha256(part).hexdigest() != sha:
            raise Invalid("bundle: %s does not match the manifest (size or SHA-256)" % path)
        pos += size
    if pos != len(data):
        raise Invalid("bundle: %d bytes after the last file of the manifest" % (len(data) - pos))
    bid = F.bundle_id(manifest_text)
    b = session.get(FirmwareBundle, bid)
    if b is None:
        b = FirmwareBundle(id=bid, fw=m["fw"], manifest=manifest_text, data=bytes(data), size=len(data),
                           created_by_user_id=actor.user_id)
        session.add(b)
        session.flush()
        audit.record(session, actor, "firmware.add", "firmware_bundle", bid,
                     after={"fw": m["fw"], "size": len(data), "files": len(m["files"])})
    return b


def bundle_public(b):
    return {"id": b.id, "fw": b.fw, "size": b.size, "files": len(json.loads(b.manifest)["files"]),
            "created": b.created}


def list_bundles(session):
    return session.exec(select(FirmwareBundle).order_by(FirmwareBundle.created.desc())).all()


# ------------------------------------------------------------------ rollouts
def _stage_size(spec, total):
    """1 -> one board; "10%" -> ceil(10 % of the boards)."""
    if isinstance(spec, bool):
        raise Invalid("a stage is a number of boards or a share such as \"10%\"")
    if isinstance(spec, int):
        if spec < 1:
            raise Invalid("a stage has at least one board")
        return min(spec, total)
    if isinstance(spec, str) and spec.endswith("%") and spec[:-1].isdigit() and 1 <= int(spec[:-1]) <= 100:
        return min(total, max(1, math.ceil(int(spec[:-1]) * total / 100)))
    raise Invalid("stage %r: a number of boards or a share such as \"10%%\"" % (spec,))


def _boards(session, property_id):
    return session.exec(select(Concentrator).where(Concentrator.property_id == property_id)
                        .order_by(Concentrator.id)).all()


def start(session, actor, body, now=None):
    """Start a rollout of bundle `body.bundle_id` to the boards of a property."""
    now = now or now_s()
    from .properties import get_property
    get_property(session, actor, body.property_id)
    actor.check(P.DEVICES_WRITE, body.property_id)
    bundle = session.get(FirmwareBundle, body.bundle_id)
    if bundle is None:
        raise NotFound("no firmware bundle %s" % body.bundle_id)
    if not body.stages:
        raise Invalid("give at least one stage")
    boards = _boards(session, body.property_id)
    if not boards:
        raise Invalid("the property has no boards")
    for spec in body.stages:
        _stage_size(spec, len(boards))
    busy = session.exec(select(Rollout).where(Rollout.property_id == body.property_id,
                                              Rollout.state.in_((RUNNING, PAUSED)))).first()
    if busy is not None:
        raise Conflict("rollout %d is still %s on this property: stop it first" % (busy.id, busy.state))
    r = Rollout(bundle_id=bundle.id, property_id=body.property_id, stages=list(body.stages), stage=0,
                health_s=body.health_s, chunk=body.chunk, max_failures_first=body.max_failures_first,
                max_failure_pct=body.max_failure_pct, created_by_user_id=actor.user_id, created=now, updated=now)
    session.add(r)
    session.flush()
    msgs = _enter_stage(session, r, bundle, boards, now)
    outbox.queue(session, msgs)
    audit.record(session, actor, "firmware.rollout", "rollout", r.id, property_id=r.property_id,
                 after={"bundle": bundle.id, "fw": bundle.fw, "stages": r.stages, "boards": len(boards),
                        "health_s": r.health_s})
    return r


def _rows(session, rollout_id):
    return session.exec(select(RolloutBoard).where(RolloutBoard.rollout_id == rollout_id)
                        .order_by(RolloutBoard.id)).all()


def _offer(session, rollout, bundle, conc, now):
    fields = F.offer_fields(bundle.manifest, downlink.keys_of(conc).signing_key(), rollout.chunk, rollout.health_s)
    return downlink.command(session, conc, ts=now, **fields)


def _enter_stage(session, rollout, bundle, boards, now):
    """Put the boards of the current stage in the rollout (the ones not yet
    in it, in id order) and offer to as many as may download at once."""
    rows = _rows(session, rollout.id)
    have = {r.concentrator_id for r in rows}
    size = _stage_size(rollout.stages[rollout.stage], len(boards))
    todo = [c for c in boards if c.id not in have][:max(0, size - len(have))]
    for c in todo:
        session.add(RolloutBoard(rollout_id=rollout.id, concentrator_id=c.id, stage=rollout.stage, state="waiting",
                                 fw_before=c.fw, updated=now))
    session.flush()
    return _offer_waiting(session, rollout, bundle, now)


def _offer_waiting(session, rollout, bundle, now):
    if rollout.state != RUNNING:
        return []
    rows = _rows(session, rollout.id)
    busy = sum(1 for r in rows if r.state in ("offered", "download"))
    out = []
    for r in rows:
        if busy >= MAX_DOWNLOADING:
            break
        if r.state == "waiting":
            conc = session.get(Concentrator, r.concentrator_id)
            out.append(_offer(session, rollout, bundle, conc, now))
            r.state, r.updated = "offered", now
            session.add(r)
            busy += 1
    return out


def _failed_too_many(rollout, rows):
    failed = [r for r in rows if r.state in BOARD_FAILED]
    if rollout.stage == 0:
        return len(failed) > rollout.max_failures_first
    return len(failed) > rollout.max_failure_pct * len(rows) / 100.0


def _stop(session, rollout, why, now, user_actor=None):
    """No new offers; boards still downloading are told to drop it; boards
    that switched stay on what they confirmed."""
    rollout.state, rollout.why, rollout.updated = STOPPED, why[:500], now
    session.add(rollout)
    out = []
    for r in _rows(session, rollout.id):
        if r.state in ("waiting", "offered", "download"):
            if r.state != "waiting":
                conc = session.get(Concentrator, r.concentrator_id)
                out.append(downlink.command(session, conc, ts=now, op="ota", id=rollout.bundle_id, cancel=True))
            r.state, r.why, r.updated = "cancelled", "rollout stopped", now
            session.add(r)
    session.add(Event(code=EV_ROLLOUT_STOPPED, ts=now, detail=rollout.id,
                      message=("firmware rollout %d stopped: %s" % (rollout.id, why))[:1000],
                      user_id=user_actor.user_id if user_actor else None))
    return out


def advance(session, rollout, now=None):
    """After a board's report: stop on too many failures, mark silent boards
    failed, go to the next stage when the current one is confirmed, offer
    to waiting boards. -> downlinks."""
    now = now or now_s()
    if rollout.state not in (RUNNING, PAUSED):
        return []
    bundle = session.get(FirmwareBundle, rollout.bundle_id)
    rows = _rows(session, rollout.id)
    for r in rows:
        if r.state in ("staged", "trial", "switched") and now - r.updated > rollout.health_s + SILENT_S:
            r.state, r.why, r.updated = "failed", "silent after staging", now
            session.add(r)
    if _failed_too_many(rollout, rows):
        bad = ", ".join("%s: %s" % (session.get(Concentrator, r.concentrator_id).dev, r.why or r.state)
                        for r in rows if r.state in BOARD_FAILED)
        return _stop(session, rollout, "boards failed their update (%s)" % bad, now)
    if rollout.state != RUNNING:
        return []
    out = []
    if rows and all(r.state in BOARD_DONE or r.state in BOARD_FAILED for r in rows):
        if rollout.stage + 1 >= len(rollout.stages):
            rollout.state, rollout.updated = DONE, now
            session.add(rollout)
            return []
        rollout.stage += 1
        rollout.updated = now
        session.add(rollout)
        out += _enter_stage(session, rollout, bundle, _boards(session, rollout.property_id), now)
    else:
        out += _offer_waiting(session, rollout, bundle, now)
    return out


def on_board_report(session, conc, st, now):
    """A board said where its update stands ({"id", "st", "next", "why",
    "fw"}: hello "ota" or uplink "otast"). -> downlinks (chunks, a new
    offer, the next stage's offers), sealed in counter order."""
    if not isinstance(st, dict) or not isinstance(st.get("id"), str):
        return []
    row = session.exec(select(RolloutBoard).join(Rollout, Rollout.id == RolloutBoard.rollout_id)
                       .where(RolloutBoard.concentrator_id == conc.id, Rollout.bundle_id == st["id"])
                       .order_by(RolloutBoard.id.desc())).first()
    if row is None:
        return []
    rollout = session.get(Rollout, row.rollout_id)
    bundle = session.get(FirmwareBundle, rollout.bundle_id)
    state = st.get("st")
    out = []
    if row.state in ACTIVE or state in BOARD_DONE or state in ("rolled_back", "refused"):
        if state == "download" and rollout.state in (RUNNING, PAUSED):
            nxt = st.get("next")
            if isinstance(nxt, int) and not isinstance(nxt, bool) and nxt >= 0:
                row.next_chunk = nxt
                total = F.nchunks(bundle.size, rollout.chunk)
                for i in range(nxt, min(total, nxt + WINDOW)):
                    out.append(downlink.seal(session, conc, protocol.OTA_CHUNK,
                                             ts=now, **F.chunk_fields(bundle.manifest, bundle.data, i, rollout.chunk)))
        elif state == "idle" and rollout.state == RUNNING and row.state in ("offered", "download"):
            out.append(_offer(session, rollout, bundle, conc, now))     # the board lost the offer
        if state in ("download", "staged", "trial", "switched", "confirmed", "rolled_back", "refused"):
            row.state = state
        if isinstance(st.get("why"), str):
            row.why = st["why"][:200]
        row.updated = now
        session.add(row)
    session.flush()
    return out + advance(session, rollout, now)


def set_state(session, actor, rollout_id, action, now=None):
    """pause (no new offers), resume, or stop."""
    now = now or now_s()
    r = get_rollout(session, actor, rollout_id)
    actor.check(P.DEVICES_WRITE, r.property_id)
    before = r.state
    out = []
    if action == "pause":
        if r.state != RUNNING:
            raise Conflict("rollout %d is %s" % (r.id, r.state))
        r.state = PAUSED
    elif action == "resume":
        if r.state != PAUSED:
            raise Conflict("rollout %d is %s" % (r.id, r.state))
        r.state = RUNNING
        session.add(r)
        out = advance(session, r, now)
    elif action == "stop":
        if r.state in (STOPPED, DONE):
            raise Conflict("rollout %d is %s" % (r.id, r.state))
        out = _stop(session, r, "stopped by %s" % actor.username, now, user_actor=actor)
    else:
        raise Invalid("action is pause, resume or stop")
    r.updated = now
    session.add(r)
    outbox.queue(session, out)
    audit.record(session, actor, "firmware.rollout." + action, "rollout", r.id, property_id=r.property_id,
                 before={"state": before}, after={"state": r.state})
    return r


def get_rollout(session, actor, rollout_id):
    r = session.get(Rollout, rollout_id)
    if r is None or not actor.sees(r.property_id):
        raise NotFound("no rollout %s" % rollout_id)
    return r


def list_rollouts(session, actor, property_id=None):
    q = select(Rollout)
    if actor.property_ids is not None:
        q = q.where(Rollout.property_id.in_(sorted(actor.property_ids)))
    if property_id is not None:
        q = q.where(Rollout.property_id == property_id)
    return session.exec(q.order_by(Rollout.id.desc()).limit(100)).all()


def view(session, actor, rollout_id):
    r = get_rollout(session, actor, rollout_id)
    bundle = session.get(FirmwareBundle, r.bundle_id)
    boards = []
    for row in _rows(session, r.id):
        c = session.get(Concentrator, row.concentrator_id)
        boards.append({"concentrator_id": c.id, "dev": c.dev, "fw": c.fw, "stage": row.stage, "state": row.state,
                       "next_chunk": row.next_chunk, "why": row.why, "fw_before": row.fw_before,
                       "updated": row.updated})
    d = r.model_dump()
    d.update(fw=bundle.fw, boards=boards)
    return d
