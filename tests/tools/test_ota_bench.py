"""`python -m tools.bench ota` runs a real update of one virtual board over
simulated Wi-Fi and prints the figures by their stable names."""
import subprocess
import sys

from tests.support import ROOT


def test_ota_bench_prints_its_figures():
    r = subprocess.run([sys.executable, "-m", "tools.bench", "ota", "--quick"], cwd=ROOT,
                       capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr[-2000:]
    got = dict(line.split(": ", 1) for line in r.stdout.splitlines() if ": " in line)
    assert set(got) == {"ota_bundle_bytes", "ota_manifest_bytes", "ota_chunks",
                        "ota_download_s", "ota_wall_s"}
    size = int(got["ota_bundle_bytes"])
    assert 20000 < size < 512 * 1024
    assert int(got["ota_chunks"]) == (size + 4095) // 4096
    # at 1 Mbit/s the bundle (base64 in the chunks) cannot take less than this
    assert float(got["ota_download_s"]) > size * 8 / 1e6
    assert float(got["ota_wall_s"]) >= float(got["ota_download_s"])
