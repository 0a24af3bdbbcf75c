# Cases for the firmware's pure modules, written once: pytest runs every
# case_* function under CPython (tests/test_pure_in_vm.py), and the same file
# runs inside the real MicroPython VM (sim/mpvm). MicroPython syntax only.
import binascii
import json
import struct

from concentrator import config as C
from concentrator import credit as CR
from concentrator import dlt645 as D
from concentrator import modbus as MB
from concentrator import protocol as P
from concentrator import relay as R
from concentrator import schema as S

KEY = binascii.unhexlify("0f" * 32)


def _raises(f, *a):
    try:
        f(*a)
    except Exception as e:
        return e
    raise AssertionError("no exception from %r" % (f,))


# ---- protocol ---------------------------------------------------------------
def case_hmac_rfc4231():
    # both implementations: the portable one (all MicroPython has) and
    # hmac_sha256 (CPython's C hmac where there is one)
    for f in (P.hmac_sha256, P.hmac_sha256_portable):
        mac = f(b"Jefe", b"what do ya want for nothing?")
        assert binascii.hexlify(mac) == \
            b"5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
        mac = f(b"\x0b" * 20, b"Hi There")
        assert binascii.hexlify(mac) == \
            b"b0344c61d8db38535ca8afceaf0bf12b881dc200c9833da726e9376c2e32cff7"
        # a key longer than the block is hashed first (RFC 4231 case 6)
        mac = f(b"\xaa" * 131, b"Test Using Larger Than Block-Size Key - Hash Key First")
        assert binascii.hexlify(mac) == \
            b"60e431591ee0b67f0d8a26aacbf5b77f8e0bc6213728c5140546040f0ee37f54"
        assert P._same(mac, bytes(mac)) and not P._same(mac, mac[:-1] + b"\x00") and not P._same(mac, mac[1:])


def case_seal_verify_roundtrip():
    body = P.message("c1", 7, P.HELLO, 1790000000, fw="0.1.0", meters=["A", "B"])
    data = P.seal(body, KEY)
    raw, mac = data.split(b"\n")
    assert json.loads(raw) == body and len(mac) == 64
    assert P.verify(data, KEY, "c1", 6) == body


def case_verify_rejections():
    data = P.seal(P.message("c1", 7, P.ACK, 5, seq=3), KEY)
    def reason(*a):
        return _raises(P.verify, *a).args[0]
    assert reason(data, b"x" * 32, "c1", 0) == "bad_mac"
    assert reason(data, KEY, "c2", 0) == "wrong_device"
    assert reason(data, KEY, "c1", 7) == "replay"
    assert reason(data[:-1] + b"0", KEY, "c1", 0) in ("bad_mac", "malformed")
    assert reason(b"{}", KEY, "c1", 0) == "malformed"
    assert reason(b"x" * 9000, KEY, "c1", 0) == "too_long"
    cmd = P.seal(P.message("c1", 9, P.COMMAND, 5, exp=100, op="time", time=1), KEY)
    assert reason(cmd, KEY, "c1", 0, 101) == "expired"
    assert P.verify(cmd, KEY, "c1", 0, 100)["op"] == "time"


def case_check_record():
    assert tuple(P.check_record([1, 0, 0, 1790000000, [123456, 850, 0]]))[0] == 1
    for bad in ([0, 0, 0, 1, [1]], [1, 2, 0, 1, [1]], [1, 0, 256, 1, [1]],
                [1, 0, 0, 1, []], [1, 0, 0, 1, [1.5]], [1, 0, 0, -1, [1]], [1, 0, 0, 1],
                [True, 0, 0, 1, [1]], "x"):
        assert _raises(P.check_record, bad).args[0] == "malformed", bad


# ---- modbus -----------------------------------------------------------------
def case_modbus_crc():
    assert MB.crc16(b"\x01\x03\x00\x00\x00\x0a") == 0xCDC5
    assert MB.crc16(b"123456789") == 0x4B37          # CRC-16/MODBUS check value
    buf = bytearray(8)
    n = MB.build_read(buf, 1, 3, 0, 10)
    assert n == 8 and bytes(buf) == b"\x01\x03\x00\x00\x00\x0a\xc5\xcd"
    assert MB.crc16(buf) == 0


def case_modbus_f32_to_int():
    def bits(x):
        return struct.unpack(">I", struct.pack(">f", x))[0]
    assert MB.f32_to_int(bits(123.456), 1000) == 123456
    assert MB.f32_to_int(bits(-2.5)) == -3               # half away from zero
    assert MB.f32_to_int(bits(2.5)) == 3
    assert MB.f32_to_int(0) == 0
    assert MB.f32_to_int(0x7F800000) is None              # +inf
    assert MB.f32_to_int(0x7FC00000) is None              # NaN
    assert MB.f32_to_int(0x00000001, 1) == 0              # subnormal
    assert MB.f32_to_int(bits(16777216.0), 1000) == 16777216000
    assert MB.f32_to_int(bits(230.1), 10) == 2301


def case_modbus_decode():
    buf = b"\x00\x01\xe2\x40\xff\xfe\x43\x66\x00\x00"
    assert MB.decode(buf, 0, {"type": "u32", "scale": 10}) == 1234560
    assert MB.decode(buf, 4, {"type": "s16"}) == -2
    assert MB.decode(buf, 4, {"type": "u16"}) == 65534
    assert MB.decode(buf, 6, {"type": "f32", "scale": 10}) == 2300
    assert MB.decode(b"\xe2\x40\x00\x01", 0, {"type": "u32"}, True) == 123456
    assert MB.decode(b"\xff\xff\xff\xfe", 0, {"type": "s32", "scale": 1, "div": 2}) == -1


def case_modbus_check_reply():
    ok = bytearray(b"\x01\x03\x02\x00\x2a")
    c = MB.crc16(ok)
    ok += bytes((c & 0xFF, c >> 8))
    assert MB.check_reply(bytes(ok), 1, 3, 7) is None
    assert MB.check_reply(b"", 1, 3, 7) == "timeouts"
    bad = bytearray(ok)
    bad[4] ^= 1
    assert MB.check_reply(bytes(bad), 1, 3, 7) == "crc"
    assert MB.check_reply(bytes(ok), 2, 3, 7) == "wrong_address"
    ex = bytearray(b"\x01\x83\x02")
    c = MB.crc16(ex)
    ex += bytes((c & 0xFF, c >> 8))
    assert MB.check_reply(bytes(ex), 1, 3, 7) == "exceptions"


# ---- DL/T 645 ---------------------------------------------------------------
def case_dlt645_codec():
    a6 = D.addr_bytes("000000001234")
    assert a6 == b"\x34\x12\x00\x00\x00\x00" and D.addr_str(a6) == "000000001234"
    assert D.addr_bytes("AAAAAAAAAAAA") == b"\xaa" * 6
    out = bytearray(40)
    n = D.build(out, a6, D.C_READ, b"\x00\x00\x01\x00", 4)
    # FE FE FE FE 68 A0..A5 68 11 04 DI+33 CS 16; DI 00010000 = total active energy
    assert bytes(out[:n]) == binascii.unhexlify("fefefefe6834120000000068110433333433f816")
    assert D.find_frame(out, 0, n) == 4
    assert D.find_frame(out, 0, n - 1) == -2
    out[n - 2] ^= 1
    assert D.find_frame(out, 0, n) < 0                    # bad checksum: no frame


def case_dlt645_bcd():
    b = bytearray(4)
    D.int_bcd(b, 0, 12345678, 4)
    assert bytes(b) == b"\x78\x56\x34\x12"
    assert D.bcd_int(b, 0, 4) == 12345678
    D.int_bcd(b, 0, -1234, 3, True)
    assert D.bcd_int(b, 0, 3, True) == -1234
    assert D.bcd_int(b"\x1a", 0, 1) is None
    assert _raises(D.int_bcd, b, 0, 1000000, 3).args[0] == "bcd range"
    assert D.days_from_civil(2000, 3, 1) == D.days_from_civil(2000, 2, 29) + 1
    assert D.civil_from_days(D.days_from_civil(2024, 12, 31))[:3] == (2024, 12, 31)


# ---- config -----------------------------------------------------------------
def case_config_check():
    good = {"dev": "c1", "key": "ab" * 32, "meters": [{"id": "A", "addr": 1, "model": "sdm120"}]}
    c = C.check(good)
    assert c["poll_s"] == 60 and c["broker"]["port"] == 1883 and c["meters"][0]["id"] == "A"
    c = C.check({"dev": "c1", "key": "ab" * 32, "broker": {"host": "h"}})
    assert c["broker"]["host"] == "h" and c["broker"]["port"] == 1883
    def err(cfg):
        return str(_raises(C.check, cfg))
    assert err([]) == "config: not a JSON object"
    assert err({"dev": "a/b", "key": "ab" * 32}).startswith("dev:")
    assert err({"dev": "c1", "key": "abc"}).startswith("key:")
    assert err({"dev": "c1", "key": "ab" * 32, "poll_s": 0}) == "poll_s: must be a positive integer"
    assert err({"dev": "c1", "key": "ab" * 32, "meters": [{"id": "A"}]}) == \
        "meters[0]: needs id and addr"
    m = {"id": "A", "addr": 1, "model": "x"}
    assert err({"dev": "c1", "key": "ab" * 32, "meters": [m, m]}) == "meters[1]: duplicate id A"
    assert C.check_board({"uart": {"id": 2}})["uart"]["tx"] == 17


# ---- credit -----------------------------------------------------------------
def case_credit_sync():
    c = CR.Credits(2)
    assert not c.known(1) and c.value(1) is None
    c.sync(1, 52000, 123456)
    assert c.known(1) and c.value(1) == 52000 and c.value(0) is None
    # balances and charged totals past 2^31 mu, kept exactly
    c.sync(0, 3 << 40, 5, 7 << 33)
    c2 = CR.Credits(3)
    c2.from_state(2, c.to_state(1))
    c2.from_state(0, c.to_state(0))
    assert c2.value(2) == 52000 and c2.value(1) is None
    assert c2.value(0) == (3 << 40) + (7 << 33), c2.value(0)
    assert c2.to_state(0)["bal"] == 3 << 40 and c2.to_state(1)["bal"] is None


# ---- schema (downlinks and the state file) -----------------------------------
def case_schema_friendly_string_is_refused():
    e = _raises(S.check_policy, {"friendly": "22:00-07:00"})
    assert isinstance(e, ValueError), e
    assert str(e).startswith('policy.friendly: must be a list of ["HH:MM", "HH:MM"] pairs, got a string'), e
    body = {"v": 1, "dev": "c1", "n": 3, "t": "cmd", "ts": 0, "op": "policy",
            "policy": {"friendly": "22:00-07:00"}}
    assert isinstance(_raises(S.check_downlink, body, 2), ValueError)
    p = S.check_policy({"friendly": [["22:00", "07:00"]], "holidays": ["2028-02-29"]})
    # the checked policy drives the relay decision without an error
    assert R.friendly(p, 23 * 3600) and not R.friendly(p, 12 * 3600)


def case_schema_never_raises_anything_but_valueerror():
    odd = ["22:00-07:00", None, True, 1 << 70, -1, 1.5, [], [[]], [["x", "y"]], {}, {"a": 1},
           [["22:00"]], [["22:00", "22:00"]], "2026-13-01", ["2026-02-30"], [1, 2]]
    keys = list(R.DEFAULT) + ["zz"]
    for k in keys:
        for v in odd:
            try:
                S.check_policy({k: v})
            except ValueError:
                pass
    for t in ("ack", "credit", "tariff", "cmd", "ota", "zz", None):
        for op in ("relay", "time", "policy", "rekey", "ota", None, 5):
            for v in odd:
                body = {"t": t, "op": op, "m": v, "seq": v, "bal": v, "e": v, "spec": v,
                        "policy": v, "nonce": v, "until": v, "state": v, "time": v}
                try:
                    S.check_downlink(body, 3)
                except ValueError:
                    pass


def case_schema_state_file_parts():
    st, bad = S.check_state({"boots": "x", "policy": {"friendly": "22:00-07:00"},
                             "credit": {"A": {"b": [1, 2]}}, "key": "zz"}, ["A"])
    assert sorted(bad) == ["boots", "credit", "key", "policy"], bad
    assert st["boots"] == 0 and "policy" not in st and st["credit"] == {}
    assert S.check_state(None, ["A"]) == ({}, [])
    assert S.check_state([1], ["A"]) == ({}, ["file"])


def cases():
    g = globals()
    return sorted(k for k in g if k.startswith("case_"))


def run_all():
    # inside the VM: one line per case, "ok NAME" or "FAIL NAME: error"
    g = globals()
    for name in cases():
        try:
            g[name]()
            print("ok", name)
        except Exception as e:
            print("FAIL %s: %s %s" % (name, type(e).__name__, e))
