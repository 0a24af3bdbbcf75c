"""What a monthly statement shows, worded: the PDF (reportlab, Chinese or
English) of services.statements.document, with a bar chart of the use per
day drawn with reportlab graphics."""
from reportlab.graphics.shapes import Drawing, Line, Rect, String
from reportlab.lib import colors
from reportlab.lib.units import mm

from ..core import pdf
from ..core.money import format_kwh, format_local, format_money, format_price
from ..models.ledger import ADJUSTMENT, APPORTIONMENT, CONSUMPTION, RECHARGE, REFUND, REVERSAL
from . import i18n

N_ = i18n.N_
SUMMARY = ((RECHARGE, N_("Recharges")), (REVERSAL, N_("Reversed sales")), (REFUND, N_("Refunds")),
           (CONSUMPTION, N_("Electricity consumed")), (APPORTIONMENT, N_("Common-area share (apportionment)")),
           (ADJUSTMENT, N_("Adjustments")))
SECTION = {RECHARGE: N_("Recharges"), REVERSAL: N_("Reversed sales"), REFUND: N_("Refunds"),
           APPORTIONMENT: N_("Apportionment lines"), ADJUSTMENT: N_("Adjustments")}


def _kwh(wh):
    return format_kwh(wh)


def title():
    return i18n.gettext("Monthly electricity statement")


def head_rows(doc):
    _ = i18n.gettext
    a = doc["account"]
    return [(_("Property"), doc["property"]), (_("Tenant"), doc["tenant"]),
            (_("Account"), "%d" % a.id), (_("Units"), ", ".join(doc["units"]) or "—"),
            (_("Period"), "%s — %s" % (doc["first_day"], doc["last_day"])),
            (_("Issued"), format_local(doc["issued"], doc["tz"], seconds=False))]


def summary_rows(doc):
    _ = i18n.gettext
    rows = [(_("Opening balance"), format_money(doc["opening_mu"]))]
    for kind, label in SUMMARY:
        mu = doc["movements"].get(kind, 0)
        if mu or kind in (RECHARGE, CONSUMPTION):
            rows.append((_(label), format_money(mu)))
    rows.append((_("Closing balance"), format_money(doc["closing_mu"])))
    return rows


def consumption_rows(doc):
    """[[item, kWh, price, amount]] with a header and a total row."""
    _ = i18n.gettext
    c = doc["consumption"]
    rows = [[_("Item"), _("kWh"), _("Price per kWh"), _("Amount")]]
    multi = len({ln["version"] for ln in c["lines"]}) > 1
    for ln in c["lines"]:
        if ln["kind"] == "band":
            item = _(ln["band"])
        elif ln["to_wh"] is None:
            item = _("Tier surcharge above {kwh} kWh").format(kwh=_kwh(ln["from_wh"]))
        else:
            item = _("Tier surcharge {lo}–{hi} kWh").format(lo=_kwh(ln["from_wh"]), hi=_kwh(ln["to_wh"]))
        if multi and ln["version"] is not None:
            item += " (v%d)" % ln["version"]
        price = format_price(ln["price_mu_per_kwh"]) if ln["price_mu_per_kwh"] is not None else "—"
        rows.append([item, _kwh(ln["energy_wh"]), price, format_money(ln["amount_mu"])])
    if c["rounding_mu"]:
        rows.append([_("Rounding (each line is rounded down)"), "", "", format_money(c["rounding_mu"])])
    if c["other_mu"]:
        rows.append([_("Other consumption (a replaced meter's last reading)"), "", "", format_money(c["other_mu"])])
    rows.append([_("Total"), _kwh(c["energy_wh"]), "", format_money(c["charged_mu"])])
    return rows


def entry_rows(doc, kind):
    _ = i18n.gettext
    rows = [[_("Time"), _("Receipt no."), _("Details"), _("Amount")]]
    for e in doc["entries"]:
        if e["kind"] == kind:
            rows.append([format_local(e["created"], doc["tz"], seconds=False), e["receipt_no"] or "—",
                         (e["text"] or "")[:60], format_money(e["amount_mu"])])
    return rows if len(rows) > 1 else None


def advice_text(doc):
    _ = i18n.gettext
    adv = doc["advice"]
    if not adv["applicable"]:
        return _("TOU advice: your tariff has no peak and valley prices, or nothing was used at peak times.")
    return _("TOU advice: moving {share} of your peak-time use ({kwh} kWh) to valley hours would have "
             "saved {amount} this month.").format(share="%d %%" % adv["share_pct"], kwh=_kwh(adv["moved_wh"]),
                                                  amount=format_money(adv["saving_mu"]))


def usage_chart(doc, width=180 * mm, height=55 * mm):
    """A bar per local day of the month (kWh), drawn with reportlab
    graphics shapes: an axis with a few gridlines, a bar a day, day labels."""
    days = doc["consumption"]["days"]
    f = pdf.font_name()
    d = Drawing(width, height)
    left, bottom, top = 14 * mm, 6 * mm, height - 6 * mm
    plot_w, plot_h = width - left - 2 * mm, top - bottom
    peak = max(days or [0])
    step = _nice_step(peak)                   # Wh per gridline
    scale_top = max(step * 4, step * -(-peak // step)) if step else 1
    for i in range(0, scale_top + 1, step or 1):
        y = bottom + plot_h * i / scale_top
        d.add(Line(left, y, left + plot_w, y, strokeColor=colors.HexColor("#e2e8f0"), strokeWidth=0.4))
        d.add(String(left - 1.5 * mm, y - 2.5, format_kwh(i).rstrip("0").rstrip("."), fontName=f, fontSize=6.5,
                     textAnchor="end"))
    n = max(len(days), 1)
    slot = plot_w / n
    for i, wh in enumerate(days):
        h = plot_h * wh / scale_top
        if h > 0:
            d.add(Rect(left + i * slot + slot * 0.15, bottom, slot * 0.7, h, fillColor=colors.HexColor("#2563eb"),
                       strokeColor=None))
        if i % 5 == 0 or i == n - 1:
            d.add(String(left + (i + 0.5) * slot, bottom - 3.2 * mm, str(i + 1), fontName=f, fontSize=6.5,
                         textAnchor="middle"))
    d.add(Line(left, bottom, left + plot_w, bottom, strokeColor=colors.HexColor("#64748b"), strokeWidth=0.6))
    d.add(String(0, height - 3 * mm, i18n.gettext("kWh per day"), fontName=f, fontSize=8))
    return d


def _nice_step(peak_wh):
    """A gridline step (Wh) of 1, 2 or 5 x 10^n giving about four lines up to `peak_wh`."""
    if peak_wh <= 0:
        return 1000
    step = 1
    while True:
        for m in (1, 2, 5):
            if m * step * 4 >= peak_wh:
                return m * step
        step *= 10


def story(doc):
    _ = i18n.gettext
    s = [pdf.para("%s %s" % (title(), doc["month"]), "title"),
         pdf.table([[k, v] for k, v in head_rows(doc)], col_widths=(35 * mm, 145 * mm), header=False),
         pdf.para(_("Summary"), "h2"),
         pdf.table([[k, v] for k, v in summary_rows(doc)], col_widths=(120 * mm, 60 * mm), header=False,
                   align_right=(1,)),
         pdf.para(_("Consumption by price band and tier"), "h2"),
         pdf.table(consumption_rows(doc), col_widths=(80 * mm, 30 * mm, 35 * mm, 35 * mm), align_right=(1, 2, 3)),
         pdf.para(_("Use per day"), "h2"), usage_chart(doc)]
    for kind in (RECHARGE, REVERSAL, REFUND, APPORTIONMENT, ADJUSTMENT):
        rows = entry_rows(doc, kind)
        if rows:
            s += [pdf.para(_(SECTION[kind]), "h2"),
                  pdf.table(rows, col_widths=(35 * mm, 35 * mm, 75 * mm, 35 * mm), align_right=(3,))]
    s += [pdf.para(advice_text(doc), "body"),
          pdf.para(_("Opening balance plus every movement equals the closing balance, from the ledger. "
                     "Wattkeeper prepaid electricity."), "small")]
    return s


def render_pdf(doc, lang):
    """The statement as PDF bytes, in `lang` (zh-CN or en)."""
    i18n.set_language(lang)
    return pdf.render(story(doc), title="%s %s %s" % (title(), doc["month"], doc["tenant"]))


def filename(doc):
    return "statement-%s-%d" % (doc["month"], doc["account"].id)


def write_zip(docs, lang, out):
    """Every statement of `docs` as a PDF into the ZIP file object `out`
    (named as filename() says). Returns how many."""
    import zipfile
    n = 0
    with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as z:
        for doc in docs:
            z.writestr(filename(doc) + ".pdf", render_pdf(doc, lang))
            n += 1
    return n
