# The concentrator's boot (Concentrator.boot loads this module for the boot
# only): recover the journal, check and restore the state file, the pushed
# tariff and the site policy (schema.py). Nothing in flash may stop the
# board: a bad part is replaced by its default and reported
# (EV_STATE_REJECTED), never a boot loop.
from concentrator import protocol as P
from concentrator import unload as _unload
from concentrator.core import STATE, TARIFF


def boot(app):
    hal = app.hal
    app.journal.recover()
    from concentrator import schema as S
    ids = [c["id"] for c in app.meters.cfg]
    st, bad = S.check_state(hal.read_json(STATE, None), ids)
    try:
        app.policy = S.check_policy(app.cfg.get("policy") or {})
    except ValueError as e:
        hal.log("config policy refused: %s" % e)
        app.policy = S.check_policy({})
        bad.append("policy")
    t = hal.read_json(TARIFF, None)
    if t is not None:
        try:
            app.tariff = S.check_tariff({"spec": t})
        except ValueError as e:
            hal.log("tariff file refused: %s" % e)
            bad.append("tariff")
    _unload("schema")
    app.boots = st.get("boots", 0) + 1
    app.n_res = st.get("n_res", 0)
    app.n_up = app.n_res
    app.n_down = st.get("n_down", -1)
    if st.get("key"):
        app.key_hex = st["key"]
        app.key = P.key_from_hex(app.key_hex)
    if st.get("key_prev"):
        app.key_prev = P.key_from_hex(st["key_prev"])
    if st.get("policy"):
        app.policy = st["policy"]
    creds = st.get("credit", {})
    relays = st.get("relay", {})
    recs = st.get("rec", {})
    mpol = st.get("mpol", {})
    # the state is written just before the journal is flushed: if the
    # journal lost that last batch, the record times are not to be trusted
    trust = app.journal.last_seq >= st.get("jseq", 0)
    rec_s = app.cfg["record_s"]
    ms = app.meters
    for i in range(len(ms)):
        mid = ms.cfg[i]["id"]
        app.credits.from_state(i, creds.get(mid))
        ms.rs.from_state(i, relays.get(mid))
        ms.policy[i] = mpol.get(mid)
        last = recs.get(mid, 0)
        if trust and last:
            app.t_rec[i] = last
            app.t_rec_next[i] = (last // rec_s + 1) * rec_s
    app._save_state(reserve=True)
    app._event(P.EV_BOOT, 0, app.boots)
    for part in bad:
        app._event(P.EV_STATE_REJECTED, 0, P.STATE_PARTS.index(part))
    for i in range(len(app.bad_models)):
        app._event(P.EV_STATE_REJECTED, 0, P.STATE_PARTS.index("models"))
    app.journal.flush()
    app.booted = True

