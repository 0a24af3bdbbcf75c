"""The texts of alert messages, in Chinese and English.

Chinese SMS providers send only templates registered with them in advance
(a template code and its named parameters); so every message a tenant gets
is one of TEMPLATES, filled with params. An SMS provider receives the
template name (mapped to its own template id by WK_SMS_TEMPLATES) and the
params; e-mail and the inbox use the rendered text. Staff messages (e-mail
to staff, webhooks) use the per-kind line of STAFF_LINES.
"""
from ..core.events import RELAY_REASON
from ..models import alert as K

LANGUAGES = ("zh-CN", "en")

# template -> language -> (e-mail subject, text); params in {braces}
TEMPLATES = {
    "low_balance": {
        "zh-CN": ("电费余额不足提醒",
                  "【{site}】尊敬的{name}：您的电费余额为{balance}元，已低于提醒金额，请及时充值，以免断电。"),
        "en": ("Low electricity balance",
               "{site}: Dear {name}, your electricity balance is {balance}, below your reminder amount. "
               "Please top up to keep the power on."),
    },
    "low_balance_days": {
        "zh-CN": ("电费余额不足提醒",
                  "【{site}】尊敬的{name}：您的电费余额为{balance}元，按近期用电约可用{days}天，请及时充值，以免断电。"),
        "en": ("Low electricity balance",
               "{site}: Dear {name}, your electricity balance is {balance}, about {days} days at your recent "
               "use. Please top up to keep the power on."),
    },
    "relay_opened": {
        "zh-CN": ("已断电通知",
                  "【{site}】尊敬的{name}：电表{meter}已于{time}断电（原因：{reason}），当前余额{balance}元。"
                  "充值后将自动恢复供电。"),
        "en": ("Power switched off",
               "{site}: Dear {name}, meter {meter} was switched off at {time} (reason: {reason}); balance "
               "{balance}. The power comes back on by itself after a top-up."),
    },
    "relay_closed": {
        "zh-CN": ("已恢复供电通知",
                  "【{site}】尊敬的{name}：电表{meter}已于{time}恢复供电，当前余额{balance}元。"),
        "en": ("Power back on",
               "{site}: Dear {name}, meter {meter} was switched back on at {time}; balance {balance}."),
    },
}

TENANT_TEMPLATE = {K.RELAY_OPENED: "relay_opened", K.RELAY_CLOSED: "relay_closed"}

RELAY_REASON_ZH = {"credit": "余额不足", "staff override": "物业操作", "technician": "技术员测试",
                   "load limit": "超过负荷限制", "boot": "集中器重启"}

# staff messages: kind -> language -> line (params of Alert.values)
STAFF_LINES = {
    K.LOW_BALANCE: {"zh-CN": "{name} 余额不足：{balance}", "en": "{name}: low balance {balance}"},
    K.RELAY_OPENED: {"zh-CN": "电表 {meter} 断电（{reason}）", "en": "meter {meter} switched off ({reason})"},
    K.RELAY_CLOSED: {"zh-CN": "电表 {meter} 恢复供电", "en": "meter {meter} switched back on"},
    K.CONCENTRATOR_OFFLINE: {"zh-CN": "集中器 {dev} 离线超过 {minutes} 分钟",
                             "en": "concentrator {dev} offline for more than {minutes} minutes"},
    K.METER_OFFLINE: {"zh-CN": "电表 {meter} 离线", "en": "meter {meter} offline"},
    K.BUS_ERRORS: {"zh-CN": "电表 {meter} 总线错误 {per_hour} 次/小时",
                   "en": "meter {meter}: {per_hour} bus errors per hour"},
    K.BILLING_MISMATCH: {"zh-CN": "电表 {meter} 计费不一致", "en": "billing mismatch on meter {meter}"},
    K.JOURNAL_THINNED: {"zh-CN": "集中器 {dev} 存储已满，明细被稀疏", "en": "journal thinned on concentrator {dev}"},
    K.THEFT: {"zh-CN": "电表 {meter} 疑似窃电（{sign}）", "en": "possible theft on meter {meter} ({sign})"},
    K.BYPASS: {"zh-CN": "{pool}：总表 {master_kwh} kWh，分表合计 {sub_kwh} kWh，损耗 {loss_pct}%（{hours} 小时，"
                        "允许 {tolerance_pct}%），疑似绕表：电表 {meter}（较平时少 {drop_kwh} kWh）",
               "en": "{pool}: master {master_kwh} kWh, sub-meters {sub_kwh} kWh, loss {loss_pct}% over {hours} h "
                     "(tolerance {tolerance_pct}%); suspected bypass: meter {meter} ({drop_kwh} kWh below its usual)"},
    K.RELAY_OPEN_ENERGY: {"zh-CN": "电表 {meter} 断电状态下仍计量 {kwh} kWh",
                          "en": "meter {meter} counted {kwh} kWh while its relay was open"},
    K.REVERSE_ENERGY: {"zh-CN": "电表 {meter} 反向用电（{power_w} W，{readings} 次读数）",
                       "en": "reverse energy on meter {meter} ({power_w} W in {readings} readings)"},
}
# the sign of a theft alert raised from a meter's event (values["sign"])
THEFT_SIGNS = {"tamper": {"zh-CN": "防窃电报警", "en": "tamper"},
               "cover open": {"zh-CN": "表盖被打开", "en": "cover opened"}}


# what pages call each kind and channel (English msgids, translated by the pages)
KIND_LABELS = {K.LOW_BALANCE: "low balance", K.RELAY_OPENED: "power off", K.RELAY_CLOSED: "power back on",
               K.CONCENTRATOR_OFFLINE: "concentrator offline", K.METER_OFFLINE: "meter offline",
               K.BUS_ERRORS: "bus errors", K.BILLING_MISMATCH: "billing mismatch",
               K.JOURNAL_THINNED: "journal thinned", K.THEFT: "possible theft", K.BYPASS: "suspected bypass",
               K.RELAY_OPEN_ENERGY: "energy while switched off", K.REVERSE_ENERGY: "reverse energy"}
CHANNEL_LABELS = {K.SMS: "SMS", K.EMAIL: "e-mail"}


class _Params(dict):
    def __missing__(self, key):
        return "—"


def pick_language(lang):
    return lang if lang in LANGUAGES else "zh-CN"


def reason_text(reason, lang):
    return RELAY_REASON_ZH.get(reason, reason) if lang == "zh-CN" else reason


def render(template, lang, params):
    """-> (subject, text) of a tenant template in `lang`."""
    lang = pick_language(lang)
    subject, text = TEMPLATES[template][lang]
    p = _Params(params)
    if "reason" in p:
        p["reason"] = reason_text(p["reason"], lang)
    return subject, text.format_map(p)


def staff_line(kind, lang, values):
    p = _Params(values)
    if "reason" in p:
        p["reason"] = reason_text(p["reason"], pick_language(lang))
    if p.get("sign") in THEFT_SIGNS:
        p["sign"] = THEFT_SIGNS[p["sign"]][pick_language(lang)]
    return STAFF_LINES[kind][pick_language(lang)].format_map(p)


def staff_text(kind, values, site):
    """A staff e-mail: (subject, text), both languages."""
    zh, en = staff_line(kind, "zh-CN", values), staff_line(kind, "en", values)
    return "[%s] %s / %s" % (site, zh, en), "%s\n%s\n\n%s" % (zh, en, site)


def relay_reason(detail):
    return RELAY_REASON.get(detail, "other")
