"""Chinese and English for every page. Templates are written in English
(msgids); headend/web/i18n/<lang>.po holds the translations, read with
Babel at start-up. The language of a request: the wk_lang cookie, then the
user's own setting, then the browser's Accept-Language, then the default."""
import contextvars
import os

from babel.messages.pofile import read_po

LANGUAGES = ("zh-CN", "en")
LANGUAGE_NAMES = {"zh-CN": "中文", "en": "English"}
COOKIE = "wk_lang"
HERE = os.path.dirname(os.path.abspath(__file__))
_current = contextvars.ContextVar("wk_language", default="en")

# texts the pages translate at run time (_() of a variable): roles, ledger
# kinds, role descriptions, messages of the services shown as they are
DYNAMIC = (
    "admin", "manager", "cashier", "technician", "viewer",
    "recharge", "reversal", "refund", "consumption", "apportionment", "adjustment",
    "everything, every property",
    "a property's tariffs, relay overrides and policy, reports, corrections, its staff",
    "sell credit, reverse own sales the same day, own day-end report",
    "concentrators, meters, relay tests, commands, key rotation; no money",
    "read only",
    "wrong user name or password",
    # rollout and board update states
    "running", "paused", "stopped", "done", "waiting", "offered", "download", "staged", "trial", "switched",
    "confirmed", "rolled_back", "refused", "failed", "cancelled", "idle",
    # price bands (concentrator.tariff.BANDS)
    "sharp", "peak", "flat", "valley", "deep_valley",
    # alert kinds and channels (services/messages.KIND_LABELS, CHANNEL_LABELS)
    "low balance", "power off", "power back on", "concentrator offline", "meter offline", "bus errors",
    "billing mismatch", "journal thinned", "possible theft", "SMS", "e-mail",
    "suspected bypass", "energy while switched off", "reverse energy",
    # portal notices (web/pages/portal.py)
    "threshold saved", "preferences saved", "top-up started", "rule saved",
    # the sales desk
    "sale",
)
_catalogs = {}


def N_(message):
    """Mark a text for translation where it is written (tools.i18n finds it);
    the page translates it with _() when it shows it."""
    return message


def dynamic():
    """Every text pages translate at run time: DYNAMIC, payment methods,
    the tariff preview's consumption profiles."""
    from ..models.receipt import METHOD_TEXT
    from ..services.tariff_forms import PROFILES
    return set(DYNAMIC) | set(METHOD_TEXT.values()) | {p[0] for p in PROFILES.values()}


def _load(lang):
    path = os.path.join(HERE, "i18n", lang.replace("-", "_") + ".po")
    if not os.path.exists(path):
        return {}
    with open(path, "rb") as f:
        cat = read_po(f)
    return {m.id: m.string for m in cat if m.id and m.string and not m.fuzzy}


def catalog(lang):
    if lang not in _catalogs:
        _catalogs[lang] = _load(lang)
    return _catalogs[lang]


def gettext(message):
    lang = _current.get()
    if lang == "en":
        return message
    return catalog(lang).get(message, message)


def ngettext(singular, plural, n):
    return gettext(singular if n == 1 else plural)


def set_language(lang):
    return _current.set(lang if lang in LANGUAGES else "en")


def current():
    return _current.get()


def pick(cookie=None, user_language=None, accept_language=None, default="zh-CN"):
    for cand in (cookie, user_language):
        if cand in LANGUAGES:
            return cand
    for part in (accept_language or "").split(","):
        tag = part.split(";")[0].strip().lower()
        if tag.startswith("zh"):
            return "zh-CN"
        if tag.startswith("en"):
            return "en"
    return default if default in LANGUAGES else "zh-CN"
