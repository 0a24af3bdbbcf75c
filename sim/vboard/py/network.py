# network module of the virtual board: a Wi-Fi station that connects at once.
# <state>/inputs.json {"wifi": false} takes the link down (fault injection).
import _vbhost as _h

STA_IF = 0
AP_IF = 1
STAT_IDLE = 1000
STAT_CONNECTING = 1001
STAT_GOT_IP = 1010
STAT_NO_AP_FOUND = 201
STAT_WRONG_PASSWORD = 202
STAT_BEACON_TIMEOUT = 200
STAT_ASSOC_FAIL = 203
STAT_HANDSHAKE_TIMEOUT = 204
AUTH_OPEN = 0
AUTH_WPA2_PSK = 3

_st = [{"active": False, "ssid": None}, {"active": False, "ssid": "ESP_vboard"}]
_host = ["esp32-vboard"]


def hostname(name=None):
    if name is None:
        return _host[0]
    _host[0] = name


def link_up():
    return bool(_h.input("wifi", 1))


class WLAN:
    IF_STA = STA_IF
    IF_AP = AP_IF

    def __init__(self, interface_id=STA_IF):
        self._if = interface_id
        self._s = _st[interface_id]

    def active(self, is_active=None):
        if is_active is None:
            return self._s["active"]
        self._s["active"] = bool(is_active)
        if not is_active and self._if == STA_IF:
            self._s["ssid"] = None

    def connect(self, ssid=None, key=None, bssid=None):
        if not self._s["active"]:
            raise OSError("Wifi Not Started")
        self._s["ssid"] = ssid or "vboard"

    def disconnect(self):
        self._s["ssid"] = None

    def isconnected(self):
        if self._if == AP_IF:
            return self._s["active"]
        return self._s["active"] and self._s["ssid"] is not None and link_up()

    def status(self, param=None):
        if param == "rssi":
            return -55
        if param is not None:
            raise ValueError("unknown status param")
        if not self._s["active"] or self._s["ssid"] is None:
            return STAT_IDLE
        return STAT_GOT_IP if link_up() else STAT_NO_AP_FOUND

    def ifconfig(self, cfg=None):
        if cfg is not None:
            return
        if not self.isconnected():
            return ("0.0.0.0", "0.0.0.0", "0.0.0.0", "0.0.0.0")
        return ("192.168.4.%d" % (2 + int(_h.uid()[-2:], 16) % 250), "255.255.255.0",
                "192.168.4.1", "192.168.4.1")

    def config(self, *args, **kw):
        if kw:
            if "ssid" in kw or "essid" in kw:
                self._s["ssid"] = kw.get("ssid", kw.get("essid"))
            return
        p = args[0]
        if p == "mac":
            import binascii
            return binascii.unhexlify(_h.uid())
        if p in ("ssid", "essid"):
            return self._s["ssid"] or ""
        if p in ("hostname", "dhcp_hostname"):
            return _host[0]
        if p == "channel":
            return 6
        if p == "txpower":
            return 20
        raise ValueError("unknown config param")

    def scan(self):
        return [(b"vboard", b"\x02\x00\x00\x00\x00\x01", 6, -55, AUTH_WPA2_PSK, False)]
