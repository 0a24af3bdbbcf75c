"""The staff dashboard at / (Jinja2 + a small inline script, no CDN)."""
import os
import time

from fastapi import APIRouter, Depends, Request
from fastapi.responses import HTMLResponse
from fastapi.templating import Jinja2Templates
from sqlmodel import select

from .api import get_session, meter_rows
from .models import Account

templates = Jinja2Templates(directory=os.path.join(os.path.dirname(__file__), "templates"))
templates.env.filters["when"] = lambda ts: (
    time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(ts)) if ts else "never")
router = APIRouter()


@router.get("/", response_class=HTMLResponse, include_in_schema=False)
def index(request: Request, session=Depends(get_session)):
    st = request.app.state.settings
    rows = meter_rows(session, st.offline_after_s)
    accounts = session.exec(select(Account).order_by(Account.id)).all()
    return templates.TemplateResponse(request, "index.html", {
        "rows": rows, "accounts": accounts, "site": st.site, "now": int(time.time())})
