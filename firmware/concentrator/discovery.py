# Bus discovery for commissioning: which meters answer on this RS485 bus?
#
#   found = scan(hal)            # [{"id","addr","model","baud","parity"}, ...]
#
# Modbus: every address in first..last, at each line setting, one register
# read with FC 03 and (if silent) FC 04; any valid reply or exception reply
# means a device is there. The model is guessed from which register map
# answers (profiles.py). DL/T 645-2007: "read address" (C=0x13) to the
# wildcard AA..AA; when several meters collide, the address is narrowed one
# byte at a time with partial wildcards. The result is a proposed meter list
# in the format of /config.json "meters" (the head-end can import it).
from . import modbus
from . import dlt645

# (baud, parity) tried for Modbus, in order; the board's own setting first
MODBUS_LINES = ((9600, "E"), (9600, "N"))
DLT_LINE = (2400, "E")

# model guesses: (model, fc, register, count) - a valid data reply = this map
_GUESS = (
    ("prepaid-int", 3, 0x000A, 2),
    ("sdm120", 4, 0x0048, 2),
)


def probe_modbus(drv, addr, baud, parity, timeout_ms=40):
    # "present" (any valid reply or exception), or None. drv: modbus.Driver.
    m = {"addr": addr, "baud": baud, "parity": parity, "stats": modbus.new_stats()}
    prof = {"baud": baud, "parity": parity, "timeout_ms": timeout_ms}
    drv.port(m, prof)
    for fc in (3, 4):
        n = modbus.build_read(drv.tx, addr, fc, 0, 1)
        r = drv.xfer(m, prof, n, 7, 1)
        st = m["stats"]
        if r is not None or st["exceptions"]:
            return m
        if st["crc"] or st["wrong_address"]:
            return m            # something answered, garbled: worth a look
    return None


def guess_model(drv, m, timeout_ms=60):
    prof = {"baud": m["baud"], "parity": m["parity"], "timeout_ms": timeout_ms}
    for g in _GUESS:
        n = modbus.build_read(drv.tx, m["addr"], g[1], g[2], g[3])
        if drv.xfer(m, prof, n, 5 + 2 * g[3], 2) is not None:
            return g[0]
    return None


def scan_modbus(hal, first=1, last=247, lines=MODBUS_LINES, timeout_ms=40,
                progress=None):
    drv = modbus.Driver(hal, 1)
    found = []
    seen = {}
    for baud, parity in lines:
        for a in range(first, last + 1):
            if a in seen:
                continue
            if progress:
                progress(a, baud, parity)
            m = probe_modbus(drv, a, baud, parity, timeout_ms)
            if m is None:
                continue
            seen[a] = 1
            model = guess_model(drv, m, timeout_ms + 40) or "unknown"
            found.append({"id": "M%03d" % a, "addr": a, "model": model,
                          "baud": baud, "parity": parity})
    return found


def _dlt_probe(drv, addr6):
    # one read-address; (12-digit address or None, True when anything came back)
    p = {"baud": DLT_LINE[0], "parity": DLT_LINE[1], "retries": 0}
    r = drv.xfer(p, addr6, dlt645.C_READ_ADDR, 0, dlt645.C_READ_ADDR, None)
    if r >= 6:
        return dlt645.addr_str(drv._rx, drv._doff), True
    return None, r != dlt645.E_TIMEOUT


def scan_dlt645(hal, max_depth=2):
    # Addresses of the DL/T 645 meters that answer, oldest trick first:
    # the whole-wildcard read-address; on a collision, fix the low address
    # byte (00..99 BCD) and retry, then the next byte, up to max_depth bytes.
    drv = dlt645.Driver(hal)
    drv._setup({"baud": DLT_LINE[0], "parity": DLT_LINE[1]})
    out = []
    todo = [(bytearray(b"\xaa" * 6), 0)]
    while todo:
        a6, d = todo.pop()
        addr, heard = _dlt_probe(drv, a6)
        if addr is not None:
            if addr not in out:
                out.append(addr)
            continue
        if not heard or d >= max_depth:
            continue
        for v in range(100):          # a6[d] is the d-th byte from the low end
            b = bytearray(a6)
            b[d] = ((v // 10) << 4) | (v % 10)
            todo.append((b, d + 1))
    return [{"id": "D" + a[-6:], "addr": a, "model": "dlt645-2007",
             "baud": DLT_LINE[0], "parity": DLT_LINE[1]} for a in out]


def scan(hal, first=1, last=247, lines=MODBUS_LINES, dlt=True, timeout_ms=40,
         progress=None):
    found = scan_modbus(hal, first, last, lines, timeout_ms, progress)
    if dlt:
        found += scan_dlt645(hal)
    return found
