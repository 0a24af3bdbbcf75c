"""A stand-in for micropython-lib's CURRENT umqtt.simple (1.8.0, what
`mpremote mip install umqtt.simple` installs on a board today), which no
package registry reachable here ships (the package index only has the 2017
release, 1.3.4, that tools/bootstrap.sh installs into build/mplib).

Written for these tests, not copied: an MQTT 3.1.1 client with the same
public API and, what the link depends on, the same calls on its socket in
the same order as 1.8.0 (read from micropython-lib's public source):

  connect(clean_session=True, timeout=None):
      sock.close() of an old socket; socket.socket(); sock.settimeout(timeout);
      socket.getaddrinfo(server, port)[0][-1]; sock.connect(addr);
      ssl.wrap_socket(sock, server_hostname=...) when given an SSLContext;
      sock.write(header, n); sock.write(variable header);
      sock.write(2-byte length) + sock.write(str) per string; sock.read(4)
  publish: sock.write(fixed header, n); strings; [sock.write(pid, 2)]; sock.write(msg)
  subscribe / unsubscribe: sock.write(header, n); sock.write(pid, 2); strings;
      [sock.write(bytes((qos,)))]; then wait_msg() until SUBACK/UNSUBACK,
      sock.read(ack_n)
  wait_msg: sock.read(1); sock.setblocking(True); ... sock.read(n) ...;
      sock.write(PUBACK) for QoS 1; returns the packet type
  check_msg: sock.setblocking(False); wait_msg()
  ping: sock.write(b"\\xc0\\0");  disconnect: sock.write(b"\\xe0\\0"); sock.close()

It differs from 1.3.4 in exactly the calls the board's link must handle:
`import socket` (not usocket), settimeout(), close() before reconnecting,
an SSLContext instead of ussl, write(buf, n) for SUBSCRIBE's header.
"""
import socket
import struct


class MQTTException(Exception):
    pass


def _varlen(buf, n):
    # remaining length into buf[1:], returns the index of its last byte
    k = 1
    while n > 0x7F:
        buf[k] = (n & 0x7F) | 0x80
        n >>= 7
        k += 1
    buf[k] = n
    return k


class MQTTClient:
    def __init__(self, client_id, server, port=0, user=None, password=None, keepalive=0,
                 ssl=None, ssl_params={}):
        self.client_id = client_id
        self.server = server
        self.port = port or (8883 if ssl else 1883)
        self.user = user
        self.pswd = password
        self.keepalive = keepalive
        self.ssl = ssl
        self.ssl_params = ssl_params
        self.sock = None
        self.pid = 0
        self.cb = None
        self.lw_topic = None
        self.lw_msg = None
        self.lw_qos = 0
        self.lw_retain = False

    def set_callback(self, f):
        self.cb = f

    def _str(self, s):
        self.sock.write(struct.pack("!H", len(s)))
        self.sock.write(s)

    def _len(self):
        n = sh = 0
        while True:
            b = self.sock.read(1)[0]
            n |= (b & 0x7F) << sh
            if not b & 0x80:
                return n
            sh += 7

    def connect(self, clean_session=True, timeout=None):
        if self.sock:
            self.sock.close()
        self.sock = socket.socket()
        self.sock.settimeout(timeout)
        self.sock.connect(socket.getaddrinfo(self.server, self.port)[0][-1])
        if self.ssl is True:
            import ssl
            self.sock = ssl.wrap_socket(self.sock, **self.ssl_params)
        elif self.ssl:
            self.sock = self.ssl.wrap_socket(self.sock, server_hostname=self.server)
        head = bytearray(b"\x10\0\0\0\0\0")
        var = bytearray(b"\x04MQTT\x04\x02\0\0")
        size = 12 + len(self.client_id)
        var[6] = clean_session << 1
        if self.user:
            size += 4 + len(self.user) + len(self.pswd)
            var[6] |= 0xC0
        if self.keepalive:
            var[7] |= self.keepalive >> 8
            var[8] |= self.keepalive & 0xFF
        k = _varlen(head, size)
        self.sock.write(head, k + 2)
        self.sock.write(var)
        self._str(self.client_id)
        if self.user:
            self._str(self.user)
            self._str(self.pswd)
        ack = self.sock.read(4)
        if not (ack[0] == 0x20 and ack[1] == 0x02):
            raise MQTTException("bad CONNACK")
        if ack[3]:
            raise MQTTException(ack[3])
        return ack[2] & 1

    def disconnect(self):
        self.sock.write(b"\xe0\0")
        self.sock.close()

    def ping(self):
        self.sock.write(b"\xc0\0")

    def publish(self, topic, msg, retain=False, qos=0):
        head = bytearray(b"\x30\0\0\0")
        head[0] |= qos << 1 | retain
        size = 2 + len(topic) + len(msg) + (2 if qos else 0)
        k = _varlen(head, size)
        self.sock.write(head, k + 1)
        self._str(topic)
        if qos:
            self.pid += 1
            struct.pack_into("!H", head, 0, self.pid)
            self.sock.write(head, 2)
        self.sock.write(msg)
        if qos == 1:
            while True:
                if self.wait_msg() == 0x40:
                    self.sock.read(1)
                    got = self.sock.read(2)
                    if (got[0] << 8 | got[1]) == self.pid:
                        return

    def _subunsub(self, topic, kind, ack_kind, ack_n, qos=0):
        head = bytearray(4)
        head[0] = kind
        self.pid += 1
        pid = self.pid
        k = _varlen(head, 4 + len(topic) + (ack_n > 3))
        self.sock.write(head, k + 1)
        struct.pack_into("!H", head, 0, pid)
        self.sock.write(head, 2)
        self._str(topic)
        if ack_n > 3:
            self.sock.write(bytes((qos,)))
        while True:
            if self.wait_msg() == ack_kind:
                r = self.sock.read(ack_n)
                if (r[1] << 8 | r[2]) != pid:
                    raise MQTTException("ack for another packet")
                if ack_n > 3 and r[3] == 0x80:
                    raise MQTTException(r[3])
                return

    def subscribe(self, topic, qos=0):
        self._subunsub(topic, 0x82, 0x90, 4, qos)

    def unsubscribe(self, topic):
        self._subunsub(topic, 0xA2, 0xB0, 3)

    def wait_msg(self):
        first = self.sock.read(1)
        self.sock.setblocking(True)
        if first is None:
            return None
        if first == b"":
            raise OSError(-1)
        if first == b"\xd0":
            self.sock.read(1)
            return None
        op = first[0]
        if op & 0xF0 != 0x30:
            return op
        size = self._len()
        tl = self.sock.read(2)
        tl = tl[0] << 8 | tl[1]
        topic = self.sock.read(tl)
        size -= tl + 2
        pid = 0
        if op & 6:
            p = self.sock.read(2)
            pid = p[0] << 8 | p[1]
            size -= 2
        msg = self.sock.read(size)
        self.cb(topic, msg)
        if op & 6 == 2:
            ack = bytearray(b"\x40\x02\0\0")
            struct.pack_into("!H", ack, 2, pid)
            self.sock.write(ack)
        return op

    def check_msg(self):
        self.sock.setblocking(False)
        return self.wait_msg()
