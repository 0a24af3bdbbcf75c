# The journal's recovery at boot (Journal.recover loads this module for the
# boot only): find the segment files, read the ack cursor, scan the newest
# segment past a torn tail and go on appending to it when it has room.
from concentrator.journal import _ACK_LEN, _MAGIC0, _MAXREC, _W, _crc32, _get_u32, _zero


def recover(self):
    hal = self.hal
    self.flash_reads = 0
    try:
        hal.mkdir(self.root)
    except OSError:
        pass
    names = hal.listdir(self.root)
    segs = []
    for n in names:
        if n.endswith(".tmp"):
            try:
                hal.remove(self._p(n))
            except OSError:
                pass
            continue
        if len(n) == 8:
            try:
                segs.append(int(n, 16))
            except ValueError:
                pass
    segs.sort()
    self.acked_seq = _read_ack(self)
    self._segs = segs
    self._f = None
    self._cur = None
    self._codec = None
    self._new = False
    self._n = 0
    last = 0
    # scan the newest segment (and older ones only while they hold nothing valid)
    while segs:
        first = segs[-1]
        n = self._load(first)
        res = self._scan(n, None, 0, None)
        if res is None or res[1] is None:  # bad header or no record at all
            self._rm(first)
            segs.pop()
            continue
        end, codec = res
        last = codec.seq
        if end == n and n + 2 * _MAXREC <= self.segment_bytes:
            # clean tail with room: keep appending to it
            self._cur = first
            self._cur_size = n
            self._codec = codec
            # the decoded state into the encoder table (what fits there)
            t = codec.t = _zero(self._ms)
            for k in list(codec.m):
                st = codec.m[k]
                if len(st) <= _W and k * _W < len(t):
                    for x in range(len(st)):
                        t[k * _W + x] = st[x]
                    del codec.m[k]
        break
    if segs:
        # a segment's records all precede the next segment's first seq
        last = max(last, segs[-1] - 1)
    self._rbuf = None
    self.last_seq = max(last, self.acked_seq)
    self._durable = self.last_seq
    self._drop_acked()
    self._ready = True
    return self.flash_reads


def _read_ack(self):
    try:
        f = self.hal.open(self._p("ack"), "rb")
    except OSError:
        return 0
    try:
        b = f.read(_ACK_LEN)
        self.flash_reads += 1
    finally:
        f.close()
    if not b or len(b) != _ACK_LEN or b[0] != _MAGIC0 or b[1] != 0x41:
        return 0
    c = _crc32(b[:6]) & 0xFFFF
    if b[6] | (b[7] << 8) != c:
        return 0
    return _get_u32(b, 2)
