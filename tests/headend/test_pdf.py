"""PDFs in Chinese and English: what pdftotext reads back is what was written."""
import subprocess

from headend.core import pdf


def test_a_chinese_and_english_pdf_reads_back(tmp_path):
    data = pdf.render([pdf.para("收据 Receipt R-000042", "title"), pdf.para("微信支付 WeChat Pay 50.00"),
                       pdf.table([["尖 sharp", "峰 peak"], ["1.2000", "0.9500"]], align_right=(1,))],
                      title="R-000042")
    assert data.startswith(b"%PDF")
    (tmp_path / "r.pdf").write_bytes(data)
    text = subprocess.run(["pdftotext", "-layout", str(tmp_path / "r.pdf"), "-"], capture_output=True, text=True,
                          check=True).stdout
    for piece in ("收据 Receipt R-000042", "微信支付 WeChat Pay 50.00", "尖 sharp", "0.9500"):
        assert piece in text, (piece, text)


def test_markup_in_data_is_text_not_markup():
    data = pdf.render([pdf.para("<b>Tenant & Co</b>")])
    assert data.startswith(b"%PDF")
