"""Readings survive anything (issue 3): power-cut fuzzing of one concentrator
with 32 meters on littlefs over the emulated NOR flash, with broker outages,
black holes and head-end restarts (sim/powercut.py, CI-sized here; the full
month is `python -m sim.powercut`), and the cost of recovery at boot with a
full journal."""
import random

from concentrator.journal import Journal
from sim import powercut
from sim.flash import FlashFS, NorFlash, PowerCut


def test_fuzz_power_cuts_and_outages_lose_nothing():
    res = powercut.run(days=2, cuts=380, seed=5)
    summary = {k: res[k] for k in ("cuts", "lost", "duplicates", "money_error", "lost_seqs",
                                   "interval_gaps", "content_mismatch", "sent_conflicts",
                                   "register_mismatch", "drained", "watchdog_resets")}
    assert res["cuts"] >= 200, summary
    assert res["drained"], summary
    assert res["lost"] == 0, summary
    assert res["duplicates"] == 0, summary
    assert res["money_error"] == 0, summary
    assert res["register_mismatch"] == 0, summary
    assert res["outages"] >= 1 and res["blackholes"] >= 1 and res["headend_restarts"] >= 1
    # every reading of the two days is there: 32 meters x 96 intervals x 2 days
    assert res["readings"] >= 32 * 96 * 2, summary
    assert res["max_step_wall_s"] < 5.0, summary


def _fill_and_cut(max_bytes, cycles):
    fl = NorFlash(384 * 4096, seed=3)
    j = Journal(FlashFS(fl), max_bytes=max_bytes)
    j.recover()
    rng = random.Random(1)
    e = [0] * 32
    t = 1700000000
    for _ in range(cycles):
        for m in range(32):
            e[m] += rng.randint(0, 400)
            j.append(0, m, t, (e[m], rng.randint(0, 3000), 0))
        j.flush()
        t += 900
        if j.thin_passes:
            break
    durable = j.last_seq
    fl.cut_after(3)           # power fails inside the next flush
    try:
        for m in range(32):
            j.append(0, m, t, (e[m] + 1, 0, 0))
        j.flush()
    except PowerCut:
        pass
    else:
        durable = j.last_seq
    fl.power_on()
    fl.reset_counters()
    j2 = Journal(FlashFS(fl), max_bytes=max_bytes)
    hal_reads = j2.recover()
    return j2, durable, hal_reads, fl.reads, j.thin_passes


def test_recovery_with_a_full_journal_is_bounded():
    small, d1, hal1, blk1, _ = _fill_and_cut(256 * 1024, 4)
    full, d2, hal2, blk2, thinned = _fill_and_cut(256 * 1024, 100000)
    assert thinned, "the journal must have filled up"
    assert small.last_seq == d1 and full.last_seq == d2, "recovery lost flushed records"
    # the journal reads the ack cursor and the newest segment, whatever its size
    assert hal1 <= 3 and hal2 <= 3, (hal1, hal2)
    # littlefs block reads (32-byte reads: mount, directory, one segment) grow
    # with the number of segment files only, bounded by the partition
    assert blk2 < 6000, blk2
    assert len(full.pending(10 ** 6)) > 0
