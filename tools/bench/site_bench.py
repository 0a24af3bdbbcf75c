"""site: one simulated day of the demo site (2 concentrators x 8 meters,
embedded amqtt broker, SQLite head-end in its own process).

    site_sim_day_wall_s    wall seconds to simulate the day (readings acked)
    site_readings_stored   readings the head-end stored for that day
"""
import time

from sqlmodel import func, select


def run(quick=False):
    from headend.models import Reading
    from sim.stack import Stack
    with Stack(broker="amqtt", concentrators=2, meters=8) as st:
        t0 = time.monotonic()
        st.site.run(86400, tick_s=5)
        st.site.settle(30, until=lambda: st.site.pending() == 0)
        wall = time.monotonic() - t0
        with st.session() as s:
            stored = s.exec(select(func.count()).select_from(Reading)).one()
    return {"site_sim_day_wall_s": round(wall, 2), "site_readings_stored": int(stored)}
