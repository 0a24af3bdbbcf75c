"""What a receipt shows, once: the lines of the HTML print view and of the
PDF (reportlab, Chinese or English), in site local time."""
from reportlab.lib.units import mm

from ..core import pdf
from ..core.money import format_local
from ..models.receipt import ADJUSTMENT, METHOD_TEXT, REFUND, REVERSAL, SALE
from . import i18n

N_ = i18n.N_
TITLE = {SALE: N_("Sales receipt"), REVERSAL: N_("Reversal slip"), REFUND: N_("Refund slip"),
         ADJUSTMENT: N_("Adjustment voucher")}


def lines(doc):
    """[(label, value)] of a receipt document (services.receipts.document),
    labels translated into the current language."""
    r, reverses_no, reversed_by_no = doc["receipt"], doc["reverses_no"], doc["reversed_by_no"]
    _ = i18n.gettext
    out = [(_("Receipt no."), r["receipt_no"]), (_("Property"), doc["property"]),
           (_("Time"), format_local(r["created"], doc["tz_offset_s"])), (_("Tenant"), r["tenant_name"]),
           (_("Unit"), r["unit_names"] or "—"), (_("Meters"), r["meter_ids"] or "—"),
           (_("Amount"), r["amount"])]
    if r["kind"] != ADJUSTMENT:
        out.append((_("Payment method"), _(METHOD_TEXT.get(r["method"], r["method"]))))
    if r["reference"]:
        out.append((_("Payment reference"), r["reference"]))
    if r["reason"]:
        out.append((_("Reason"), r["reason"]))
    if reverses_no:
        out.append((_("Reverses"), reverses_no))
    if reversed_by_no:
        out.append((_("Reversed by"), reversed_by_no))
    out += [(_("Balance after"), r["balance_after"]), (_("Cashier"), r["cashier"]),
            (_("Business day"), r["business_day"])]
    return out


def title(r):
    return i18n.gettext(TITLE[r["kind"]])


def render_pdf(doc, lang):
    """The receipt document as PDF bytes, in `lang` (zh-CN or en)."""
    i18n.set_language(lang)
    r = doc["receipt"]
    rows = lines(doc)
    story = [pdf.para("%s %s" % (title(r), r["receipt_no"]), "title"),
             pdf.table([[k, v] for k, v in rows], col_widths=(45 * mm, 120 * mm), header=False),
             pdf.para(i18n.gettext("Keep this receipt. Wattkeeper prepaid electricity."), "small")]
    return pdf.render(story, title="%s %s" % (title(r), r["receipt_no"]))
