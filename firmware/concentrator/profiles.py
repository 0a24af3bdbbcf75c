# Meter models as data tables. No code here: modbus.py / dlt645.py read them.
#
# Modbus profile keys:
#   proto      "modbus" | "dlt645"
#   baud, parity, stop   serial defaults (a meter dict may override them)
#   fc         function code for reads (3 holding, 4 input registers)
#   max_regs   most registers one request may ask for
#   timeout_ms response timeout (first byte); the driver adapts below it
#   regs       register entries: name, addr, type (f32 u16 s16 u32 s32),
#              scale (and optional div): integer value = raw * scale / div,
#              rounded half away from zero, in the units of
#              docs/architecture.md (Wh, W, dV, mA). "band" entries carry an
#              "idx" and fill Reading.bands[idx].
#   billing    names read on EVERY poll; they must fit in one request
#   extra      names read every `extra_every` polls (one more request)
#   relay      {"kind": "gpio"}: a contactor owned by the concentrator
#              (hal.relay_set(meter["relay"], closed)), or
#              {"kind": "modbus", "fc": 6 | 5, "addr": reg/coil,
#               "on": value, "off": value, "status": name of a reg entry,
#               "settle_ms": wait before read-back}
#   words      "hi" (default: high word first) or "lo" (word-swapped 32-bit)

EASTRON_COMMON = (
    {"name": "voltage_dv", "addr": 0x0000, "type": "f32", "scale": 10},
    {"name": "current_ma", "addr": 0x0006, "type": "f32", "scale": 1000},
    {"name": "power_w", "addr": 0x000C, "type": "f32", "scale": 1},
    {"name": "freq_chz", "addr": 0x0046, "type": "f32", "scale": 100},
    {"name": "energy_wh", "addr": 0x0048, "type": "f32", "scale": 1000},
    {"name": "export_wh", "addr": 0x004A, "type": "f32", "scale": 1000},
    {"name": "total_wh", "addr": 0x0156, "type": "f32", "scale": 1000},
)

PROFILES = {
    "sdm120": {
        "proto": "modbus", "baud": 9600, "parity": "N", "stop": 1,
        "fc": 4, "max_regs": 60, "timeout_ms": 250,
        "regs": EASTRON_COMMON,
        "billing": ("energy_wh",),
        "extra": ("voltage_dv", "current_ma", "power_w"),
        "extra_every": 10,
        "relay": {"kind": "gpio"},
    },
    "sdm630": {
        "proto": "modbus", "baud": 9600, "parity": "N", "stop": 1,
        "fc": 4, "max_regs": 60, "timeout_ms": 250,
        "regs": (
            {"name": "voltage_dv", "addr": 0x0000, "type": "f32", "scale": 10},
            {"name": "voltage2_dv", "addr": 0x0002, "type": "f32", "scale": 10},
            {"name": "voltage3_dv", "addr": 0x0004, "type": "f32", "scale": 10},
            {"name": "current1_ma", "addr": 0x0006, "type": "f32", "scale": 1000},
            {"name": "current_ma", "addr": 0x0030, "type": "f32", "scale": 1000},
            {"name": "power_w", "addr": 0x0034, "type": "f32", "scale": 1},
            {"name": "freq_chz", "addr": 0x0046, "type": "f32", "scale": 100},
            {"name": "energy_wh", "addr": 0x0048, "type": "f32", "scale": 1000},
            {"name": "export_wh", "addr": 0x004A, "type": "f32", "scale": 1000},
            {"name": "total_wh", "addr": 0x0156, "type": "f32", "scale": 1000},
        ),
        "billing": ("energy_wh",),
        "extra": ("voltage_dv", "current_ma", "power_w"),
        "extra_every": 10,
        "relay": {"kind": "gpio"},
    },
    # A typical Chinese prepaid DIN-rail meter with scaled integer holding
    # registers and its own latching relay.
    "prepaid-int": {
        "proto": "modbus", "baud": 9600, "parity": "E", "stop": 1,
        "fc": 3, "max_regs": 60, "timeout_ms": 300,
        "regs": (
            {"name": "voltage_dv", "addr": 0x0000, "type": "u16", "scale": 1},
            {"name": "current_ma", "addr": 0x0001, "type": "u32", "scale": 1},
            {"name": "power_w", "addr": 0x0003, "type": "s32", "scale": 1},
            {"name": "energy_wh", "addr": 0x000A, "type": "u32", "scale": 10},
            {"name": "band", "idx": 0, "addr": 0x000C, "type": "u32", "scale": 10},
            {"name": "band", "idx": 1, "addr": 0x000E, "type": "u32", "scale": 10},
            {"name": "band", "idx": 2, "addr": 0x0010, "type": "u32", "scale": 10},
            {"name": "band", "idx": 3, "addr": 0x0012, "type": "u32", "scale": 10},
            {"name": "relay_closed", "addr": 0x0014, "type": "u16", "scale": 1},
        ),
        "billing": ("voltage_dv", "current_ma", "power_w", "energy_wh",
                    "band", "relay_closed"),
        "extra": (),
        "bands": 4,
        "relay": {"kind": "modbus", "fc": 6, "addr": 0x0020, "on": 1, "off": 0,
                  "status": "relay_closed", "settle_ms": 50},
    },
    # DL/T 645-2007: the data-ID tables live in dlt645.PROFILES; "table"
    # names one of them (dlt645-2007, dlt645-2007-block, dlt645-2007-prepaid)
    # and any key given here overrides it (see the top of dlt645.py).
    "dlt645-2007": {"proto": "dlt645", "baud": 2400, "parity": "E",
                    "table": "dlt645-2007"},
    "dlt645-2007-block": {"proto": "dlt645", "baud": 2400, "parity": "E",
                          "table": "dlt645-2007-block"},
    "dlt645-2007-prepaid": {"proto": "dlt645", "baud": 2400, "parity": "E",
                            "table": "dlt645-2007-prepaid"},
}
