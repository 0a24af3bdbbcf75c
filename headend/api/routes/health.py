"""Health and metrics, for monitoring (no login)."""
from typing import Any, Optional

from fastapi import APIRouter, Request
from fastapi.responses import PlainTextResponse
from pydantic import BaseModel
from sqlmodel import select

from ..deps import SessionDep, public

router = APIRouter(tags=["ops"])


class Health(BaseModel):
    status: str
    db: bool
    ingest: dict[str, int]
    mqtt: Optional[dict[str, Any]]
    notify: Optional[dict[str, Any]] = None


@router.get("/api/health", response_model=Health, dependencies=[public()])
def health(request: Request, session: SessionDep):
    db_ok = True
    try:
        session.exec(select(1)).one()
    except Exception:
        db_ok = False
    st = request.app.state
    return Health(status="ok" if db_ok else "degraded", db=db_ok, ingest=st.ingest.stats.snapshot(),
                  mqtt=st.mqtt.snapshot() if st.mqtt is not None else None,
                  notify=st.notifier.snapshot() if st.notifier is not None else None)


@router.get("/metrics", response_class=PlainTextResponse, include_in_schema=False, dependencies=[public()])
def metrics(request: Request):
    lines = []
    for k, v in sorted(request.app.state.ingest.stats.snapshot().items()):
        lines.append("# TYPE wk_ingest_%s_total counter" % k)
        lines.append("wk_ingest_%s_total %d" % (k, v))
    mq = request.app.state.mqtt
    if mq is not None:
        lines.append("wk_mqtt_connected %d" % (1 if mq.connected.is_set() else 0))
        lines.append("wk_mqtt_queue %d" % mq.queue.qsize())
    nt = request.app.state.notifier
    if nt is not None:
        for k, v in sorted(nt.stats.items()):
            lines.append("# TYPE wk_notify_%s_total counter" % k)
            lines.append("wk_notify_%s_total %d" % (k, v))
    return PlainTextResponse("\n".join(lines) + "\n")
