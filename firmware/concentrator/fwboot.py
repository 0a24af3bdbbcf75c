# Which firmware version boots (over-the-air updates, docs/protocol.md).
#
# Each version lives in its own folder, /fw/a or /fw/b (concentrator/ and
# lib/ inside); /boot.json says which one runs:
#     {"run": "a", "fw": "0.1.0"}                          a confirmed version
#     {"run": "a", ..., "next": "b", "next_fw": ..}        b staged and verified
#     {"run": "b", "prev": "a", "trial": 1, ...}           b on trial (health check)
#     {"run": "a", "failed": "b", "failed_id": ..}         b failed: a is back
# /boot.json only ever changes by writing /boot.json.tmp and renaming it over
# the old one (one atomic rename on littlefs): a power cut at any flash
# operation leaves the old pointer or the new one, never a mix, and the
# version it names is complete (it was verified before it was named).
#
# At every boot select() does the bookkeeping: a staged version becomes the
# running one on trial (the switch); a version still on trial after
# TRIAL_BOOTS boots without confirming its health (it crashed, hung, or lost
# its power during the check) is rolled back.
#
# The same file runs on the board as /fwboot.py (boot.py calls boot(); it
# is installed by tools/provision and never replaced over the air: it must
# work whatever version a bundle brings) and in the simulator as
# concentrator.fwboot (select() on the simulated flash).
try:
    import ujson as json
except ImportError:
    import json

POINTER = "/boot.json"
ROOT = "/fw"
TRIAL_BOOTS = 2


def slot_path(slot):
    # folder of a version ("" is the layout of boards provisioned before OTA:
    # the package at the root of the flash)
    return ROOT + "/" + slot if slot else ""


def other(slot):
    return "b" if slot == "a" else "a"


def read(fs):
    try:
        with fs.open(POINTER, "r") as f:
            p = json.loads(f.read())
    except (OSError, ValueError):
        return None
    if type(p) is not dict or type(p.get("run")) is not str or p["run"] not in ("", "a", "b"):
        return None
    return p


def write(fs, p):
    tmp = POINTER + ".tmp"
    with fs.open(tmp, "w") as f:
        f.write(json.dumps(p))
    fs.rename(tmp, POINTER)


def _exists(fs, path):
    try:
        fs.stat(path)
        return True
    except OSError:
        return False


def select(fs):
    # -> the pointer in force after this boot's bookkeeping (None: no pointer,
    # the version at the root runs)
    p = read(fs)
    if p is None:
        # no pointer (or an unreadable one): the provisioned version
        if _exists(fs, ROOT + "/a/concentrator"):
            p = {"run": "a"}
            write(fs, p)
            return p
        return None
    if p.get("next") in ("a", "b") and p["next"] != p["run"]:
        # the switch: the staged version runs, on trial
        q = {"run": p["next"], "fw": p.get("next_fw"), "id": p.get("next_id"),
             "prev": p["run"], "prev_fw": p.get("fw"), "trial": 1,
             "health_s": p.get("health_s", 300)}
        write(fs, q)
        return q
    t = p.get("trial")
    if t:
        if type(t) is not int or t >= TRIAL_BOOTS:
            return rollback(fs, p)
        p["trial"] = t + 1
        write(fs, p)
    return p


def stage(fs, slot, bundle_id, fw, health_s):
    # a verified version in `slot` boots next (on trial)
    p = read(fs) or {"run": ""}
    p["next"] = slot
    p["next_id"] = bundle_id
    p["next_fw"] = fw
    p["health_s"] = health_s
    write(fs, p)


def unstage(fs):
    p = read(fs)
    if p is not None and p.get("next"):
        for k in ("next", "next_id", "next_fw"):
            p.pop(k, None)
        write(fs, p)


def confirm(fs):
    # the version on trial passed its health check: it stays
    p = read(fs)
    if p is None or not p.get("trial"):
        return p
    q = {"run": p["run"], "fw": p.get("fw"), "id": p.get("id"), "confirmed_id": p.get("id")}
    write(fs, q)
    return q


def rollback(fs, p=None):
    # the version on trial failed: the previous one runs again
    p = p or read(fs)
    if p is None or not p.get("trial"):
        return p
    q = {"run": p.get("prev") or "", "fw": p.get("prev_fw"), "failed": p["run"],
         "failed_id": p.get("id"), "failed_fw": p.get("fw")}
    write(fs, q)
    return q


# ---- on the board (boot.py / main.py) ------------------------------------------
class _OsFS:
    def __init__(self):
        import os
        self.os = os

    def open(self, path, mode="r"):
        return open(path, mode)

    def rename(self, a, b):
        self.os.rename(a, b)

    def stat(self, path):
        return self.os.stat(path)


def boot():
    # boot.py: do the bookkeeping, put the running version on sys.path
    import sys
    p = select(_OsFS())
    d = slot_path(p["run"]) if p else ""
    if d:
        sys.path[:0] = [d, d + "/lib"]
    return p


def failed():
    # main.py, when the version cannot even be imported: on trial, roll back
    # and reset; a confirmed version stays (the technician's console is there)
    fs = _OsFS()
    p = read(fs)
    if p is not None and p.get("trial"):
        rollback(fs, p)
        import machine
        machine.reset()
