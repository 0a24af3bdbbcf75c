# The Modbus requests a board makes now and then: a meter model's register
# plan (once per model, cached by the driver), writes (FC 05/06/16), relay
# switching with read-back, raw register reads (console, commissioning).
# modbus.py loads this module for each call and, on MicroPython, drops it
# again: none of it stays in the heap between calls.
from concentrator.modbus import (_put_crc, build_read, decode, fc_of, stats_of, swapped,
                                 width)


def build_write1(buf, addr, fc, reg, value):
    # FC 05 (coil: value 0xFF00 on / 0x0000 off) or FC 06 (one register)
    return build_read(buf, addr, fc, reg, value & 0xFFFF)


def build_write_multi(buf, addr, reg, values):
    n = len(values)
    build_read(buf, addr, 16, reg, n)
    buf[6] = 2 * n
    j = 7
    for v in values:
        buf[j] = (v >> 8) & 0xFF
        buf[j + 1] = v & 0xFF
        j += 2
    return _put_crc(buf, j)


def plan(profile, names):
    # Group the entries named in `names` into as few reads as possible:
    # [(start, count, (entries...)), ...], each within max_regs and all the
    # entries of one read with the same function code (fc_of).
    mx = profile.get("max_regs", 60)
    gap = profile.get("max_gap", mx)
    regs = [e for e in profile["regs"] if e["name"] in names]
    regs.sort(key=lambda e: (fc_of(profile, e), e["addr"]))
    blocks = []
    for e in regs:
        a = e["addr"]
        end = a + width(e)
        if blocks:
            b = blocks[-1]
            if fc_of(profile, b[2][0]) == fc_of(profile, e) and \
                    a - (b[0] + b[1]) <= gap and end - b[0] <= mx:
                b[1] = max(b[1], end - b[0])
                b[2].append(e)
                continue
        blocks.append([a, end - a, [e]])
    return [(b[0], b[1], tuple(b[2])) for b in blocks]


def write(drv, meter, profile, fc, reg, values):
    # FC 05/06 (one value) or 16 (list of values); True if echoed back.
    drv.port(meter, profile)
    if fc == 16:
        n = build_write_multi(drv.tx, meter["addr"], reg, values)
    else:
        v = values[0] if isinstance(values, (list, tuple)) else values
        if fc == 5:
            v = 0xFF00 if v else 0
        n = build_write1(drv.tx, meter["addr"], fc, reg, v)
    r = drv.xfer(meter, profile, n, 8, drv.retries)
    if meter["addr"] == 0:
        return True
    if r is None:
        return False
    for i in range(2, 6):
        if r[i] != drv.tx[i]:
            stats_of(meter)["bad_echo"] += 1
            return False
    return True


def read_regs(drv, meter, profile, fc, start, count):
    # Raw registers as a list of u16, or None (console, commissioning).
    drv.port(meter, profile)
    n = build_read(drv.tx, meter["addr"], fc, start, count)
    r = drv.xfer(meter, profile, n, 5 + 2 * count, drv.retries)
    if r is None:
        return None
    return [(r[3 + 2 * i] << 8) | r[4 + 2 * i] for i in range(count)]


def set_relay(drv, meter, profile, closed):
    rl = profile.get("relay")
    if not rl or rl.get("kind") != "modbus":
        return False
    if not write(drv, meter, profile, rl.get("fc", 6), rl["addr"],
                 rl["on"] if closed else rl["off"]):
        return False
    ent = None
    for e in profile["regs"]:
        if e["name"] == rl.get("status"):
            ent = e
    if ent is None:
        return True                      # nothing to read back
    fc = fc_of(profile, ent)
    w = width(ent)
    swap = swapped(profile, ent)
    for k in range(3):                   # a latching relay takes time
        drv.hal.sleep_ms(rl.get("settle_ms", 0))
        n = build_read(drv.tx, meter["addr"], fc, ent["addr"], w)
        r = drv.xfer(meter, profile, n, 5 + 2 * w, drv.retries)
        if r is not None:
            v = decode(r, 3, ent, swap)
            if v is not None and bool(v) == bool(closed):
                return True
    return False
