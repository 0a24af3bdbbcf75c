"""Flash journal benchmark: compactness, offline capacity, write amplification, recovery.

Runs the real firmware journal on littlefs over the emulated NOR flash
(sim/flash.py, ESP32 VfsLfs2 geometry).  Workload: 32 meters read every 15
minutes (energy grows 0..400 Wh per interval, power 0..3000 W), the core
flushing once per polling cycle (32 readings per flush) unless said otherwise.
"""
import random
import sys


from sim.flash import FlashFS, NorFlash  # noqa: E402
from concentrator.journal import Journal  # noqa: E402

METERS = 32
PER_DAY = 96
MIB = 1024 * 1024
T0 = 1700000000


def _workload(j, cycles, rng, energy, t, per_flush=METERS, stop=None):
    n = 0
    for _ in range(cycles):
        for m in range(METERS):
            energy[m] += rng.randint(0, 400)
            j.append(0, m, t + m, (energy[m], rng.randint(0, 3000), 0))
            n += 1
            if n % per_flush == 0:
                j.flush()
        j.flush()
        t += 900
        if stop is not None and stop(j):
            break
    return n, t


def _setup(blocks, max_bytes):
    fl = NorFlash(blocks * 4096, seed=7)
    fs = FlashFS(fl)
    j = Journal(fs, max_bytes=max_bytes)
    j.recover()
    return fl, fs, j


def _amplification(per_flush, cycles):
    rng = random.Random(11)
    fl, fs, j = _setup(384, MIB)
    energy = [rng.randint(10 ** 5, 10 ** 7) for _ in range(METERS)]
    fl.reset_counters()
    _workload(j, cycles, rng, energy, T0, per_flush=per_flush)
    rec = j.stats()["bytes"]
    return fl.counters()["bytes_programmed"] / rec, fl.counters()["erases"], rec


def run(quick=True):
    rng = random.Random(1)
    out = {}
    # offline capacity: fill a 1 MiB journal (1.5 MiB partition) until the first thinning
    fl, fs, j = _setup(384, MIB)
    energy = [rng.randint(10 ** 5, 10 ** 7) for _ in range(METERS)]
    days = 3 if quick else 60
    n, t = _workload(j, PER_DAY * days, rng, energy, T0,
                     stop=lambda jj: jj.thin_passes > 0)
    st = j.stats()
    per = st["bytes"] / n
    out["journal_bytes_per_reading"] = round(per, 2)
    if quick:
        # block-granular estimate: whole segments of this density fill the budget
        per_seg = n / max(1, st["segments"] - 0.5)
        out["journal_offline_days_32m_15min_1mib"] = round(
            (MIB // 4096 - 1) * per_seg / (METERS * PER_DAY), 1)
    else:
        out["journal_offline_days_32m_15min_1mib"] = round(n / (METERS * PER_DAY), 1)
        out["journal_thinning_after_readings"] = n
    # recovery cost on that (full) journal: HAL reads and block-device reads
    fs = FlashFS(fl)
    fl.reset_counters()
    j2 = Journal(fs, max_bytes=MIB)
    out["journal_recovery_flash_reads"] = j2.recover()
    out["journal_recovery_block_reads"] = fl.reads
    out["journal_recovery_bytes_read"] = fl.bytes_read
    out["journal_recovery_segments"] = j2.stats()["segments"]
    # write amplification: flash bytes programmed / journal bytes
    cyc = 96 if quick else 96 * 5
    amp, erases, rec = _amplification(METERS, cyc)
    out["journal_write_amplification"] = round(amp, 2)
    out["journal_erases_per_kib"] = round(erases * 1024 / rec, 2)
    amp1, erases1, rec1 = _amplification(1, 24 if quick else 96)
    out["journal_write_amplification_flush_per_reading"] = round(amp1, 1)
    return out


if __name__ == "__main__":
    import json
    print(json.dumps(run("--full" not in sys.argv), indent=1))
