"""PDF documents (receipts, statements) with reportlab, in Chinese and
English: one CJK font from Debian's fonts-wqy-zenhei (installed by
tools/bootstrap.sh), registered once, and the paragraph styles every
document shares.

    from headend.core import pdf
    story = [pdf.para("收据 Receipt", "title"), pdf.table([["a", "b"]])]
    data = pdf.render(story, title="Receipt R-000123")
"""
import io
import os
import threading

from reportlab.lib import colors
from reportlab.lib.pagesizes import A4
from reportlab.lib.styles import ParagraphStyle
from reportlab.lib.units import mm
from reportlab.pdfbase import pdfmetrics
from reportlab.pdfbase.ttfonts import TTFont
from reportlab.platypus import Paragraph, SimpleDocTemplate, Table, TableStyle

FONT = "WK-CJK"
FONT_PATHS = ("/usr/share/fonts/truetype/wqy/wqy-zenhei.ttc",
              "/usr/share/fonts/wqy-zenhei/wqy-zenhei.ttc")
_lock = threading.Lock()
_registered = False


class FontMissing(RuntimeError):
    pass


def font_name():
    """Register the CJK font (once) and return its name."""
    global _registered
    if _registered:
        return FONT
    with _lock:
        if not _registered:
            path = next((p for p in FONT_PATHS if os.path.exists(p)), None)
            if path is None:
                raise FontMissing("the CJK font is missing (Debian package fonts-wqy-zenhei): "
                                  "run bash tools/bootstrap.sh")
            pdfmetrics.registerFont(TTFont(FONT, path, subfontIndex=0))
            _registered = True
    return FONT


def styles():
    f = font_name()
    return {
        "title": ParagraphStyle("wk-title", fontName=f, fontSize=16, leading=20, spaceAfter=4 * mm),
        "h2": ParagraphStyle("wk-h2", fontName=f, fontSize=12, leading=15, spaceBefore=3 * mm, spaceAfter=2 * mm),
        "body": ParagraphStyle("wk-body", fontName=f, fontSize=10, leading=13),
        "small": ParagraphStyle("wk-small", fontName=f, fontSize=8, leading=10, textColor=colors.grey),
    }


def para(text, style="body"):
    """A paragraph (text is escaped: no markup from data)."""
    from xml.sax.saxutils import escape
    return Paragraph(escape(str(text)), styles()[style])


def table(rows, col_widths=None, header=True, align_right=()):
    """A table of strings; `align_right`: column indexes of numbers."""
    t = Table([[str(c) for c in r] for r in rows], colWidths=col_widths, repeatRows=1 if header else 0)
    cmds = [("FONT", (0, 0), (-1, -1), font_name(), 9),
            ("GRID", (0, 0), (-1, -1), 0.25, colors.HexColor("#cbd5e1")),
            ("VALIGN", (0, 0), (-1, -1), "MIDDLE")]
    if header:
        cmds.append(("BACKGROUND", (0, 0), (-1, 0), colors.HexColor("#eef2f7")))
    for c in align_right:
        cmds.append(("ALIGN", (c, 0), (c, -1), "RIGHT"))
    t.setStyle(TableStyle(cmds))
    return t


def render(story, title="", pagesize=A4):
    """Flowables -> PDF bytes."""
    buf = io.BytesIO()
    doc = SimpleDocTemplate(buf, pagesize=pagesize, title=title, author="Wattkeeper",
                            leftMargin=15 * mm, rightMargin=15 * mm, topMargin=15 * mm, bottomMargin=15 * mm)
    doc.build(list(story))
    return buf.getvalue()
