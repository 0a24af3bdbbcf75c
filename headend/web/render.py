"""Rendering pages: one Jinja environment (with the i18n extension and the
money/time spellings of core.money as filters), a page() helper that sets
the request's language and fills in what every page needs."""
import os

import jinja2
from fastapi.templating import Jinja2Templates

from ..core import money
from . import i18n

HERE = os.path.dirname(os.path.abspath(__file__))
env = jinja2.Environment(loader=jinja2.FileSystemLoader(os.path.join(HERE, "templates")),
                         autoescape=jinja2.select_autoescape(["html"]), extensions=["jinja2.ext.i18n"])
templates = Jinja2Templates(env=env)
env.install_gettext_callables(i18n.gettext, i18n.ngettext, newstyle=True)
env.filters["money"] = lambda mu: "—" if mu is None else money.format_money(mu)
env.filters["exact"] = lambda mu: "—" if mu is None else money.format_exact(mu)
env.filters["kwh"] = lambda wh: "—" if wh is None else money.format_kwh(wh)
env.filters["when"] = lambda ts, tz=28800: money.format_local(ts, tz) if ts else "—"
env.globals["LANGUAGES"] = i18n.LANGUAGES
env.globals["LANGUAGE_NAMES"] = i18n.LANGUAGE_NAMES


def language_of(request, user=None):
    settings = request.app.state.settings
    return i18n.pick(request.cookies.get(i18n.COOKIE), getattr(user, "language", None),
                     request.headers.get("accept-language"), settings.default_language)


def page(request, name, context=None, status_code=200, actor=None):
    """Render template `name` for this request."""
    actor = actor if actor is not None else getattr(request.state, "actor", None)
    lang = language_of(request, actor.user if actor is not None else None)
    i18n.set_language(lang)
    auth_session = getattr(request.state, "auth_session", None)
    ctx = {"actor": actor, "lang": lang, "csrf_token": auth_session.csrf_token if auth_session else "",
           "path": request.url.path}
    ctx.update(context or {})
    return templates.TemplateResponse(request, name, ctx, status_code=status_code)
