"""recharge: how long a tenant waits for power after paying.

Simulated site (sim/stack.py: Mosquitto, head-end in its own process,
real firmware). One prepaid meter with a big constant load and a small
balance is driven to zero credit until its relay opens (fast, virtual time);
then a cashier recharges through the head-end's REST API and, from that
moment, the board runs the way main.py runs it on hardware: the board's
clock follows the wall clock, and after every step it sleeps what step()
asks for, at most board.PERIOD_MS (20 ms), until the simulated meter's relay
closes. So the figure is what a tenant waits. Repeated `runs` times (quick:
10, full: 50).

    recharge_to_relay_p50_s   wall seconds, POST recharge -> relay closed (median)
    recharge_to_relay_p95_s   the same, 95th percentile (goal < 2 s)
    recharge_to_relay_max_s   worst run
    recharge_runs             runs measured
"""
import time

PRICE = 6000             # mu per kWh
LOAD_W = 20000           # 20 kW: 2000 mu per virtual minute
TOP_UP_MU = 3000         # each recharge: about 1.5 virtual minutes of that load
METER = "C1-102"         # a prepaid meter with its own relay


def _run_like_main(site, until, timeout_s):
    """Step every board of the site as board.run() does on hardware, in wall
    time, until until() (True) or timeout_s (False)."""
    from concentrator.board import PERIOD_MS
    t0 = time.perf_counter()
    v0 = site.t_us
    while True:
        now = time.perf_counter()
        if until():
            return True
        if now - t0 > timeout_s:
            return False
        site.t_us = v0 + int((now - t0) * 1e6)     # the board's clock is the wall clock
        wait = PERIOD_MS
        for vc in site.concentrators:
            vc.clock.advance_to(site.t_us)
            d = vc.step()
            if d is not None and d < wait:
                wait = d
        if wait > 0:
            time.sleep(wait / 1000.0)


def _sim_meter(st, meter_id):
    for vc in st.site.concentrators:
        for mc, sm in zip(vc.cfg["meters"], vc.meters):
            if mc["id"] == meter_id:
                return vc, sm
    raise KeyError(meter_id)


def _pct(xs, p):
    xs = sorted(xs)
    k = (len(xs) - 1) * p / 100.0
    lo = int(k)
    hi = min(lo + 1, len(xs) - 1)
    return xs[lo] + (xs[hi] - xs[lo]) * (k - lo)


def run(quick=False, runs=None):
    from sim.load import ConstantLoad
    from sim.stack import Stack
    runs = runs or (10 if quick else 50)
    waits = []
    with Stack(broker="mosquitto", concentrators=1, meters=2, price_mu_per_kwh=PRICE,
               balances={METER: TOP_UP_MU}) as st:
        vc, sm = _sim_meter(st, METER)
        site = st.site
        idx = [m["id"] for m in vc.cfg["meters"]].index(METER)
        # the big load only once the board has its first balance (before it,
        # the board has no credit to enforce)
        if not site.settle(30, until=lambda: vc.fw.credit_of(idx) is not None):
            raise RuntimeError("the board never got a balance from the head-end")
        sm.advance(vc.clock.now_us)
        sm.load = ConstantLoad(LOAD_W)
        for i in range(runs):
            # drive the meter to zero credit: the board opens the relay
            site.run(3 * 3600, tick_s=5, until=lambda: not sm.relay_closed)
            if sm.relay_closed:
                raise RuntimeError("run %d: the relay never opened at zero credit" % i)
            # let the readings reach the head-end and stay clear of the
            # relay's minimum switching interval (60 virtual s by default)
            site.run(120, tick_s=5)
            site.settle(10, until=lambda: site.pending() == 0)
            # pay the debt (the last poll's overshoot) plus TOP_UP_MU
            amount = TOP_UP_MU + max(0, -min(st.balance(METER), vc.fw.credit_of(idx)))
            amount = -(-amount // 100) * 100     # a sale is in whole fen
            t0 = time.perf_counter()
            st.recharge(METER, amount, actor="bench")
            if not _run_like_main(site, lambda: sm.relay_closed, 30):
                raise RuntimeError("run %d: relay still open 30 s after the recharge (board credit %s, "
                                   "head-end balance %s)" % (i, vc.fw.credit_of(idx), st.balance(METER)))
            waits.append(time.perf_counter() - t0)
    return {"recharge_to_relay_p50_s": round(_pct(waits, 50), 3),
            "recharge_to_relay_p95_s": round(_pct(waits, 95), 3),
            "recharge_to_relay_max_s": round(max(waits), 3),
            "recharge_runs": len(waits)}


if __name__ == "__main__":
    import sys
    for k, v in run(quick="--quick" in sys.argv).items():
        print("%s: %s" % (k, v))
