# When a tenant's supply should be on or off: the relay policy
# (docs/relay-policy.md explains it to a property manager).
#
#   decide(policy, rs, i, credit, closed, now, local, power_w) -> (want, reason)
#
# want: True (close), False (open) or None (leave it) for meter i. `rs` is the
# Relays table (overrides, emergency credit, load-limit trip, last switch).
from array import array

from concentrator import protocol as P
from concentrator.tariff import days_from_civil

DEFAULT = {
    "friendly": [],        # [["22:00", "07:00"], ...] local times: no disconnection
    "friendly_weekend": False,   # Saturday and Sunday are friendly all day
    "holidays": [],        # ["2026-10-01", ...] friendly all day
    "emergency_mu": 0,     # credit a tenant may use once per top-up
    "reconnect_mu": 0,     # reconnect only when credit >= this (hysteresis)
    "min_switch_s": 60,    # no two operations closer than this (no chatter)
    "load_limit_w": 0,     # 0: off; above it the relay trips...
    "load_reset_s": 300,   # ...and closes again after this long
}


def merged(policy):
    p = {}
    for k in DEFAULT:
        p[k] = DEFAULT[k]
    if isinstance(policy, dict):
        for k in policy:
            if k in DEFAULT:
                p[k] = policy[k]
    return p


def _hm(s):
    return int(s[:2]) * 60 + int(s[3:5])


def friendly(policy, local):
    # True when no disconnection may happen at local time `local` (seconds)
    day = local // 86400
    if policy["friendly_weekend"] and (day + 3) % 7 >= 5:
        return True
    for h in policy["holidays"]:
        try:
            if days_from_civil(int(h[:4]), int(h[5:7]), int(h[8:10])) == day:
                return True
        except (ValueError, IndexError, TypeError):
            pass
    mins = (local % 86400) // 60
    for w in policy["friendly"]:
        a, b = _hm(w[0]), _hm(w[1])
        if (a <= mins < b) if a <= b else (mins >= a or mins < b):
            return True
    return False


class Relays:
    # The relay state of every meter, as columns by meter index (32
    # RelayState objects of 7 attributes cost ~2.5 KB of heap, these ~0.7 KB).
    def __init__(self, n):
        self.override = [None] * n      # None or [closed(bool), until(unix)]
        self.armed = bytearray(b"\x01" * n)   # emergency credit available
        self.in_emergency = bytearray(n)
        self.trip_until = array("I", bytes(4 * n))   # a load-limit trip holds the relay open until then
        self.last_switch = array("I", bytes(4 * n))  # unix time of the last operation
        self.reason = bytearray(n)      # why the relay is in its state (P.R_*)
        self.failures = bytearray(n)    # consecutive read-back mismatches (at most 255)

    def to_state(self, i):
        return [self.override[i], bool(self.armed[i]), self.trip_until[i],
                self.last_switch[i], self.reason[i]]

    def from_state(self, i, s):
        # a saved state (schema.check_state has checked it)
        if isinstance(s, list) and len(s) == 5:
            self.override[i] = s[0]
            self.armed[i] = 1 if s[1] else 0
            self.trip_until[i] = s[2]
            self.last_switch[i] = s[3]
            self.reason[i] = s[4]


def decide(policy, rs, i, credit, closed, now, local, power_w):
    # -> (want, reason) for meter i (rs: the Relays); want None means
    # "leave the relay as it is"
    ov = rs.override[i]
    if ov is not None:
        if now < ov[1]:
            return (None if closed == ov[0] else ov[0]), P.R_OVERRIDE
        rs.override[i] = None     # expired: the normal policy takes over
        if rs.reason[i] in (P.R_OVERRIDE, P.R_TECHNICIAN):
            rs.reason[i] = 0
    limit = policy["load_limit_w"]
    if limit and power_w is not None and power_w > limit and closed is not False:
        rs.trip_until[i] = now + policy["load_reset_s"]
        return False, P.R_LOAD_LIMIT
    trip = rs.trip_until[i]
    if trip:
        if now < trip:
            return (None if closed is False else False), P.R_LOAD_LIMIT
        rs.trip_until[i] = 0
        if closed is False and rs.reason[i] == P.R_LOAD_LIMIT and (credit is None or credit > 0):
            return True, P.R_LOAD_LIMIT
    if credit is None:
        return None, 0
    if closed is not False:
        if credit > 0:
            rs.in_emergency[i] = 0
            return None, 0
        if rs.armed[i] and credit + policy["emergency_mu"] > 0 and policy["emergency_mu"] > 0:
            rs.in_emergency[i] = 1
            return None, 0
        if friendly(policy, local):
            return None, 0
        if rs.in_emergency[i]:
            rs.armed[i] = 0           # used up: back with the next top-up
            rs.in_emergency[i] = 0
        if now - rs.last_switch[i] < policy["min_switch_s"]:
            return None, 0
        return False, P.R_CREDIT
    # open: reconnect when the credit covers the debt plus the minimum
    if rs.reason[i] in (P.R_CREDIT, P.R_BOOT, 0) and credit > 0 and credit >= policy["reconnect_mu"]:
        if now - rs.last_switch[i] < policy["min_switch_s"]:
            return None, 0
        return True, P.R_CREDIT
    return None, 0
