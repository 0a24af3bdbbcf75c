"""powercut: power-cut fuzzing of one concentrator (sim/powercut.py).

One board with 32 meters on littlefs over an emulated NOR flash, 15-minute
records, power cut inside random flash operations, broker outages, black
holes and head-end restarts; at the end the head-end's books are checked
against the simulated meters' ground truth.

    powercut_cuts          power cuts that hit the board
    powercut_lost          records/intervals lost (see sim/powercut.py)
    powercut_duplicates    records stored twice
    powercut_money_error   mu off, summed over accounts
quick: 2 simulated days, >= 100 cuts; full: a simulated month, >= 1000 cuts.
"""



def run(quick=True):
    from sim import powercut
    if quick:
        res = powercut.run(days=2, cuts=120, seed=3)
    else:
        res = powercut.run(days=30, cuts=1000, seed=1)
    return {
        "powercut_cuts": res["cuts"],
        "powercut_lost": res["lost"],
        "powercut_duplicates": res["duplicates"],
        "powercut_money_error": res["money_error"],
        "powercut_watchdog_resets": res["watchdog_resets"],
        "powercut_interval_rereads": res["interval_rereads"],
        "powercut_boot_block_reads_max": res["boot_block_reads_max"],
        "powercut_blackhole_detect_wall_s_max": round(res["blackhole_detect_wall_s_max"], 2),
        "powercut_drained": int(bool(res["drained"])),
        "powercut_sim_days": res["days"],
    }
