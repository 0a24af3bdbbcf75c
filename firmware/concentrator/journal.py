# Append-only flash journal of readings and events (MicroPython + CPython).
#
# Records are kept in flash until the head-end has *committed* them (the
# application-level ack carrying the highest stored sequence number), then
# whole segments are deleted.  All file access goes through the HAL.
#
# Files under `root`:
#   XXXXXXXX   segment, named by the hex sequence number of its first record
#              (header base_seq + 1); append-only, at most segment_bytes long
#   ack        the ack cursor: b"WA" + u32 acked_seq + u16 check (CRC-32 low
#              16 bits); replaced atomically (write ack.tmp, rename)
#   *.tmp      leftovers of an interrupted replace; removed at recover()
#
# Segment = 14-byte header, then frames.
#   header: b"WJ", u8 version(1), u8 flags (bit0: thinned), u32 base_seq,
#           u32 base_ts (little endian), u16 check (CRC-32 of the 12 bytes, low 16 bits)
#   frame:  varint n, n payload bytes, u16 check = CRC-32(n bytes + payload) & 0xFFFF
#           A frame is the batch written by one flush(); a torn or corrupt
#           frame ends the segment (everything after it is ignored).
#   payload: records back to back.  Per record:
#     h      u8: bit0 kind (0 reading, 1 event), bit1 seq gap follows,
#            bit2 flags follow (reading), bits3-5 extra value count (7: varint
#            count follows)
#     [gap]  varint: seq = previous seq + 1 + gap  (gaps come from thinning)
#     meter  u8 meter index
#     dts    zigzag varint: ts - previous record's ts (segment base_ts first)
#     reading: zigzag(energy - last energy of this meter in this segment),
#              zigzag(power - last power), [varint flags], then per extra
#              value zigzag(band_i - last band_i); a meter's first reading in
#              a segment is encoded against 0 (absolute)
#     event:  zigzag varint per value
#
# Reading values: (energy_wh, power_w, flags[, band energies...]).
# Flags (bit set in the `flags` value of a reading):
FLAG_MISSING = 1      # one or more poll intervals before this reading were missed
FLAG_IMPLAUSIBLE = 2  # the register delta was implausible (negative/too big); kept as read
FLAG_RELAY_OPEN = 4   # the relay was open when read
FLAG_THINNED = 8      # set by the journal: intermediate readings of this meter
                      # before this one were dropped by full-flash thinning
#
# Full-flash policy (journal bytes would exceed max_bytes, or the filesystem has
# fewer than 2 free blocks, when a new segment is needed):
#   1. thinning: a run of the oldest un-acknowledged sealed segments is merged into
#      one, keeping for every meter the LAST reading of each original segment (its
#      cumulative register) and every event; the kept readings get FLAG_THINNED;
#   2. if no run can be merged that way, the run keeps only the last reading of
#      each meter over the whole run (and the newest events that fit);
#   the latest cumulative register of every meter is never dropped.  Each pass
#   appends an event (meter 0, code EV_THINNED, args: dropped, first_seq, last_seq).
#   Acknowledged segments are simply deleted.
EV_THINNED = 7  # == protocol.EV_JOURNAL_THINNED (values: code, dropped, first_seq, last_seq)

KIND_READING = 0
KIND_EVENT = 1

from concentrator import unload

try:
    from binascii import crc32 as _crc32
    _crc32(b"x")
except Exception:  # pragma: no cover - ports without binascii.crc32
    def _crc32(data, crc=0):
        crc ^= 0xFFFFFFFF
        for b in data:
            crc ^= b
            for _ in range(8):
                crc = (crc >> 1) ^ (0xEDB88320 & -(crc & 1))
        return crc ^ 0xFFFFFFFF

_HDR = 14
_MAGIC0 = 0x57  # 'W'
_MAGIC1 = 0x4A  # 'J'
_VER = 1
_ACK_LEN = 8
_MAXREC = 96  # upper bound of one encoded record with <=7 values of 64-bit ints
_NX = 6       # extra values of a reading preallocated per meter (charged + 5 bands)


def _zz(v):
    return (v << 1) if v >= 0 else ((-v << 1) - 1)


def _unzz(u):
    return (u >> 1) if not (u & 1) else -((u + 1) >> 1)


def _put_u32(b, i, v):
    b[i] = v & 0xFF
    b[i + 1] = (v >> 8) & 0xFF
    b[i + 2] = (v >> 16) & 0xFF
    b[i + 3] = (v >> 24) & 0xFF


def _get_u32(b, i):
    return b[i] | (b[i + 1] << 8) | (b[i + 2] << 16) | (b[i + 3] << 24)


_W = 2 + _NX  # values per meter in a Journal's encoder table


class _Codec:
    # Encoder/decoder state of one segment: per meter its last [energy,
    # power, extra values...]. `t` is a Journal's table (one flat list,
    # _W values for each meter it was made for: the previous segment's,
    # zeroed, as a meter's first reading in a segment is encoded against 0),
    # so appending allocates nothing; `m` (meter -> list) holds any other
    # meter, or one with more values (and every meter of a decoder).
    def __init__(self, base_seq, base_ts, t=None):
        self.seq = base_seq
        self.ts = base_ts
        self.t = None if t is None else _zero(t)
        self.m = {}


def _zero(t):
    for k in range(len(t)):
        t[k] = 0
    return t


def _state(codec, meter, n):
    # -> (list, offset) of meter's n values in codec
    st = codec.m.get(meter)
    t = codec.t
    o = meter * _W
    if st is None and t is not None and n <= _W and o < len(t):
        return t, o
    if st is None or len(st) < n:
        st2 = [0] * n
        if st is not None:
            for k in range(len(st)):
                st2[k] = st[k]
        elif t is not None and o < len(t):
            for k in range(_W):
                st2[k] = t[o + k]         # (more values than the table holds)
        st = st2
        codec.m[meter] = st
    return st, 0


class Journal:
    def __init__(self, hal, root="/journal", segment_bytes=4096, max_bytes=None,
                 meters=0):
        # meters: how many meters will append readings (their encoder state
        # is allocated now, so the heap does not grow when they first appear)
        self.hal = hal
        self.root = root.rstrip("/") or "/"
        self.segment_bytes = segment_bytes
        self.max_bytes = max_bytes
        self.last_seq = 0
        self.acked_seq = 0
        self.flash_reads = 0
        self.thinned = 0          # records dropped by thinning since boot
        self.thin_passes = 0
        self._segs = []           # first seqs (ints) of segment files, ascending
        self._f = None            # open current segment file
        self._cur = None          # first seq of the current (appendable) segment
        self._cur_size = 0        # durable bytes in the current segment file
        self._codec = None        # encoder state of the current segment
        self._new = False         # current segment file not yet created
        # the pending frame: room for a poll cycle of every meter's reading
        # (~24 B each, encoded) from the start, so the heap does not grow
        # in the first busy cycle (it still grows for a bigger frame)
        self._buf = bytearray(_MAXREC + 80 + 24 * max(meters, 4))
        self._n = 0               # bytes of the pending (unflushed) frame payload
        self._durable = 0         # last seq that is in flash
        self._rbuf = None         # segment read buffer: allocated by _load,
                                  # dropped after each read pass (not kept live)
        self._ready = False
        self._pend_event = None
        self._ms = [0] * (_W * meters)   # encoder table (_Codec), kept across segments

    # ---- paths ----------------------------------------------------------
    def _p(self, name):
        return self.root + "/" + name

    @staticmethod
    def _name(first):
        return "%08x" % first

    # ---- recovery -------------------------------------------------------
    def recover(self):
        # at boot (journal_boot.py, loaded for it and dropped again on
        # MicroPython): find the segments, the ack cursor and the tail
        from concentrator import journal_boot
        try:
            return journal_boot.recover(self)
        finally:
            unload("journal_boot")

    def _load(self, first):
        # read a whole segment into self._rbuf, return its length
        try:
            f = self.hal.open(self._p(self._name(first)), "rb")
        except OSError:
            return 0
        try:
            if self._rbuf is None:
                self._rbuf = bytearray(self.segment_bytes)
            mv = memoryview(self._rbuf)
            n = 0
            cap = len(self._rbuf)
            while n < cap:
                k = f.readinto(mv[n:])
                self.flash_reads += 1
                if not k:
                    break
                n += k
        finally:
            f.close()
        return n

    def _rm(self, first):
        try:
            self.hal.remove(self._p(self._name(first)))
        except OSError:
            pass

    # ---- decoding -------------------------------------------------------
    def _scan(self, n, out, after, limit, hdr_out=None):
        """Decode self._rbuf[:n].

        Appends (seq, kind, meter, ts, values) with seq > after to `out`
        (if not None, up to `limit` entries in out).  Returns None if the
        header is bad, else (end of the last valid frame, codec after it),
        codec None when no frame is valid.
        """
        b = self._rbuf
        if n < _HDR or b[0] != _MAGIC0 or b[1] != _MAGIC1 or b[2] != _VER:
            return None
        if (_crc32(bytes(b[:12])) & 0xFFFF) != (b[12] | (b[13] << 8)):
            return None
        if hdr_out is not None:
            hdr_out.append(b[3])
        codec = _Codec(_get_u32(b, 4), _get_u32(b, 8))
        pos = _HDR
        got = False
        mv = memoryview(b)
        while pos < n:
            # frame length varint
            i = pos
            ln = 0
            sh = 0
            while True:
                if i >= n or sh > 21:
                    return (pos, codec if got else None)
                c = b[i]
                i += 1
                ln |= (c & 0x7F) << sh
                sh += 7
                if not c & 0x80:
                    break
            end = i + ln
            if ln == 0 or end + 2 > n:
                break
            if (_crc32(mv[pos:end]) & 0xFFFF) != (b[end] | (b[end + 1] << 8)):
                break
            if not self._decode(b, i, end, codec, out, after, limit):
                break
            got = True
            pos = end + 2
            if out is not None and limit is not None and len(out) >= limit:
                break
        return (pos, codec if got else None)

    def _decode(self, b, i, end, codec, out, after, limit):
        # decode records b[i:end] updating codec; False if malformed
        try:
            while i < end:
                h = b[i]
                i += 1
                seq = codec.seq + 1
                if h & 2:
                    g, i = _rv(b, i)
                    seq += g
                meter = b[i]
                i += 1
                u, i = _rv(b, i)
                ts = codec.ts + _unzz(u)
                nx = (h >> 3) & 7
                if nx == 7:
                    nx, i = _rv(b, i)
                if h & 1:
                    vals = []
                    for _ in range(nx):
                        u, i = _rv(b, i)
                        vals.append(_unzz(u))
                else:
                    st, o = _state(codec, meter, 2 + nx)
                    u, i = _rv(b, i)
                    st[o] += _unzz(u)
                    u, i = _rv(b, i)
                    st[o + 1] += _unzz(u)
                    fl = 0
                    if h & 4:
                        fl, i = _rv(b, i)
                    vals = [st[o], st[o + 1], fl]
                    for k in range(o + 2, o + 2 + nx):
                        u, i = _rv(b, i)
                        st[k] += _unzz(u)
                        vals.append(st[k])
                if i > end:
                    return False
                codec.seq = seq
                codec.ts = ts
                if out is not None and seq > after and (limit is None or len(out) < limit):
                    out.append((seq, h & 1, meter, ts, tuple(vals)))
        except IndexError:
            return False
        return i == end

    # ---- encoding -------------------------------------------------------
    def _encode(self, codec, seq, kind, meter, ts, values):
        # encode one record at the end of self._buf, updating codec
        need = self._n + _MAXREC + 10 * len(values)
        if need > len(self._buf):
            nb = bytearray(need + 128)
            nb[:self._n] = self._buf[:self._n]
            self._buf = nb
        b = self._buf
        i = self._n
        gap = seq - codec.seq - 1
        if kind:
            nx = len(values)
        else:
            nx = len(values) - 3
            if nx < 0:
                nx = 0
        fl = 0 if kind else (values[2] if len(values) > 2 else 0)
        h = (kind & 1) | (2 if gap else 0) | (4 if fl else 0) | ((nx if nx < 7 else 7) << 3)
        b[i] = h
        i += 1
        if gap:
            i = _wv(b, i, gap)
        b[i] = meter & 0xFF
        i += 1
        i = _wv(b, i, _zz(ts - codec.ts))
        if nx >= 7:
            i = _wv(b, i, nx)
        if kind:
            for v in values:
                i = _wv(b, i, _zz(v))
        else:
            st, o = _state(codec, meter, 2 + nx)
            e = values[0]
            p = values[1] if len(values) > 1 else 0
            i = _wv(b, i, _zz(e - st[o]))
            st[o] = e
            i = _wv(b, i, _zz(p - st[o + 1]))
            st[o + 1] = p
            if fl:
                i = _wv(b, i, fl)
            for k in range(nx):
                v = values[3 + k]
                i = _wv(b, i, _zz(v - st[o + 2 + k]))
                st[o + 2 + k] = v
        codec.seq = seq
        codec.ts = ts
        self._n = i

    # ---- public API -----------------------------------------------------
    def append(self, kind, meter, ts, values):
        if not self._ready:
            self.recover()
        if self._codec is not None and not self._new:
            if self._cur_size + self._n + _MAXREC + 10 * len(values) + 6 > self.segment_bytes:
                self.flush()
                self._seal()
        elif self._codec is not None and self._new:
            if _HDR + self._n + _MAXREC + 10 * len(values) + 6 > self.segment_bytes:
                self.flush()
                self._seal()
        if self._codec is None:
            self._start(ts)
        seq = self.last_seq + 1
        self._encode(self._codec, seq, kind, meter, ts, values)
        self.last_seq = seq
        return seq

    def _start(self, ts, room=True):
        # begin a new segment (created in flash at the next flush)
        if room:
            self._make_room()
        first = self.last_seq + 1
        self._cur = first
        self._codec = _Codec(self.last_seq, ts, self._ms)
        self._hts = ts
        self._new = True
        self._cur_size = 0
        if first not in self._segs:
            self._segs.append(first)
        ev = self._pend_event
        if ev is not None:
            self._pend_event = None
            seq = self.last_seq + 1
            self._encode(self._codec, seq, KIND_EVENT, 0, ts, ev)
            self.last_seq = seq

    def _seal(self):
        if self._f is not None:
            f = self._f
            self._f = None
            f.close()
        self._codec = None
        self._cur = None
        self._new = False

    def flush(self):
        if not self._n:
            return
        n = self._n
        fr = bytearray(4 + n + 2 + (_HDR if self._new else 0))
        j = 0
        if self._new:
            _hdr(fr, 0, self._cur - 1, self._hts)
            j = _HDR
        k = _wv(fr, j, n)
        fr[k:k + n] = self._buf[:n]
        ck = _crc32(bytes(fr[j:k + n])) & 0xFFFF
        fr[k + n] = ck & 0xFF
        fr[k + n + 1] = ck >> 8
        total = k + n + 2
        if self._f is None:
            self._f = self.hal.open(self._p(self._name(self._cur)), "wb" if self._new else "ab")
        self._f.write(memoryview(fr)[:total])
        self._f.flush()
        self._new = False
        self._cur_size += total
        self._n = 0
        self._durable = self.last_seq

    def pending(self, limit=32):
        if self._n:
            self.flush()
        out = []
        after = self.acked_seq
        segs = self._segs
        # start at the last segment whose first seq <= after + 1
        k = 0
        for idx in range(len(segs)):
            if segs[idx] <= after + 1:
                k = idx
        while k < len(segs) and len(out) < limit:
            first = segs[k]
            k += 1
            if first == self._cur and self._new:
                continue
            n = self._load(first)
            lo = out[-1][0] if out else after
            self._scan(n, out, lo, limit)
        self._rbuf = None
        return out

    def ack(self, seq):
        if seq > self._durable:
            seq = self._durable
        if seq <= self.acked_seq:
            return
        b = bytearray(_ACK_LEN)
        b[0] = _MAGIC0
        b[1] = 0x41
        _put_u32(b, 2, seq)
        c = _crc32(bytes(b[:6])) & 0xFFFF
        b[6] = c & 0xFF
        b[7] = c >> 8
        tmp = self._p("ack.tmp")
        f = self.hal.open(tmp, "wb")
        try:
            f.write(b)
        finally:
            f.close()
        self.hal.rename(tmp, self._p("ack"))
        self.acked_seq = seq
        self._drop_acked()

    def _drop_acked(self):
        segs = self._segs
        a = self.acked_seq
        while len(segs) > 1 and segs[1] - 1 <= a:
            first = segs.pop(0)
            self._rm(first)
        if len(segs) == 1 and self.last_seq <= a and not self._n:
            if self._cur == segs[0]:
                self._seal()
            self._rm(segs.pop(0))

    # ---- space ----------------------------------------------------------
    def _budget(self):
        if self.max_bytes is None:
            try:
                st = self.hal.statvfs(self.root)
                bs = st[0] or st[1]
                total = st[2] * bs
                free = st[3] * bs
                own = len(self._segs) * self.segment_bytes
                self.max_bytes = min(total * 3 // 4, free + own - 4 * bs)
            except (OSError, AttributeError):
                self.max_bytes = 256 * 1024
            if self.max_bytes < 4 * self.segment_bytes:
                self.max_bytes = 4 * self.segment_bytes
        return self.max_bytes

    def _full(self):
        if (len(self._segs) + 1) * self.segment_bytes > self._budget():
            return True
        try:
            st = self.hal.statvfs(self.root)
            return st[3] < 2
        except (OSError, AttributeError):
            return False

    def _make_room(self):
        # full-flash policy (see the top of this file); one pass per new
        # segment. The thinning code is in journal_thin.py, loaded only when
        # the flash is full and dropped again on MicroPython afterwards.
        if not self._full():
            return
        if len(self._segs) < 2:
            return
        from concentrator import journal_thin
        buf = self._buf
        try:
            r = journal_thin.thin(self, 1) or journal_thin.thin(self, 2)
        finally:
            self._buf = buf           # merging grows a buffer: not kept
            self._rbuf = None
            self._n = 0
            unload("journal_thin")
        if not r:
            return
        dropped, lo, hi = r
        self.thinned += dropped
        self.thin_passes += 1
        self._pend_event = (EV_THINNED, dropped, lo, hi)

    def stats(self):
        return {
            "last_seq": self.last_seq,
            "acked_seq": self.acked_seq,
            # upper bound: sequence numbers dropped by thinning are included
            "records": self.last_seq - self.acked_seq,
            "pending": self.last_seq - self.acked_seq,
            "segments": len(self._segs),
            "bytes": self._bytes(),
            "flash_reads": self.flash_reads,
            "thinned": self.thinned,
            "thin_passes": self.thin_passes,
            "max_bytes": self.max_bytes,
        }

    def _bytes(self):
        t = 0
        for first in self._segs:
            if first == self._cur:
                t += self._cur_size
            else:
                try:
                    t += self.hal.stat(self._p(self._name(first)))[6]
                except OSError:
                    pass
        return t


def _hdr(fr, flags, base_seq, base_ts):
    fr[0] = _MAGIC0
    fr[1] = _MAGIC1
    fr[2] = _VER
    fr[3] = flags
    _put_u32(fr, 4, base_seq)
    _put_u32(fr, 8, base_ts)
    ck = _crc32(bytes(fr[:12])) & 0xFFFF
    fr[12] = ck & 0xFF
    fr[13] = ck >> 8


def _rv(b, i):
    v = 0
    sh = 0
    while True:
        c = b[i]
        i += 1
        v |= (c & 0x7F) << sh
        if not c & 0x80:
            return v, i
        sh += 7


def _wv(b, i, v):
    while v > 0x7F:
        b[i] = (v & 0x7F) | 0x80
        v >>= 7
        i += 1
    b[i] = v
    return i + 1


