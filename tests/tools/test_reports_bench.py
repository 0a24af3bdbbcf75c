"""Issue 11, check 6: `python -m tools.bench reports --quick` prints the
monthly report's time and the statements' rate (their goals are the
benchmark's business: ≤ 300 ms, ≥ 20 a second at full size)."""
from tools.bench.__main__ import main
from tests.tools.test_scale_benches import figures


def test_reports_benchmark_prints_its_figures(capsys):
    assert main(["reports", "--quick"]) == 0
    f = figures(capsys.readouterr().out)
    for k in ("report_month_property_ms", "report_month_property_p95_ms", "statement_batch_per_s",
              "statement_batch_per_cpu_s"):
        assert k in f and f[k] > 0, (k, f)
    assert f["report_month_property_p95_ms"] >= f["report_month_property_ms"], f
