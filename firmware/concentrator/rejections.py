# Refused downlinks reported at a bounded rate: Concentrator._report_rejections
# loads this module when there are refusals to report, at most once per
# record interval.
from concentrator import protocol as P


def report(app):
    # one event per reason per record interval, with the count: a flood
    # of forged messages costs a few journal records, no flash writes of
    # its own (they go out with the next poll cycle's flush)
    app.rej_pending = False
    for i in range(len(app.rej)):
        if app.rej[i]:
            app._event(P.EV_MSG_REJECTED, 0, i, app.rej[i])
            app.rej[i] = 0
    app.hal.log("downlinks refused: %d since boot, last %s" % (app.rejected, app.last_reject))
    app.unflushed = True
