# Full-flash thinning of the journal (the policy is described at the top of
# journal.py). Loaded by Journal._make_room only when the flash is full.
from concentrator.journal import FLAG_THINNED, _HDR, _Codec, _crc32, _hdr, _wv


def thin(jn, level):
    # merge a run of the oldest segments of journal jn into one
    # (thinning level 1 or 2); returns (dropped, lo, hi) or None
    segs = jn._segs
    room = jn.segment_bytes - _HDR - 5
    jn._n = 0
    group = 0
    dropped = 0
    seen = jn.acked_seq
    base_ts = 0
    if level == 1:
        codec = None
        for idx in range(len(segs)):
            k = Keep(seen)
            jn._scan(jn._load(segs[idx]), k, 0, None)
            recs = k.records()
            if codec is None:
                base_ts = recs[0][3] if recs else 0
                codec = _Codec(segs[0] - 1, base_ts)
            n0 = jn._n
            for r in recs:
                jn._encode(codec, r[0], r[1], r[2], r[3], r[4])
            if jn._n > room:
                jn._n = n0
                break
            group = idx + 1
            dropped += k.dropped
            if k.top > seen:
                seen = k.top
    else:
        group = 2
        k = Keep(seen)
        for idx in range(group):
            jn._scan(jn._load(segs[idx]), k, 0, None)
        while True:
            recs = k.records()
            base_ts = recs[0][3] if recs else 0
            codec = _Codec(segs[0] - 1, base_ts)
            jn._n = 0
            for r in recs:
                jn._encode(codec, r[0], r[1], r[2], r[3], r[4])
            if jn._n <= room or not k.drop_event():
                break
        dropped = k.dropped
        seen = k.top
    if group < 2 or jn._n > room:
        jn._n = 0
        return None
    # write the merged segment (header flagged thinned + one frame), then replace
    n = jn._n
    fr = bytearray(_HDR + 3 + n + 2)
    _hdr(fr, 1, segs[0] - 1, base_ts)
    j = _wv(fr, _HDR, n)
    fr[j:j + n] = jn._buf[:n]
    ck = _crc32(bytes(fr[_HDR:j + n])) & 0xFFFF
    fr[j + n] = ck & 0xFF
    fr[j + n + 1] = ck >> 8
    jn._n = 0
    tmp = jn._p("thin.tmp")
    f = jn.hal.open(tmp, "wb")
    try:
        f.write(memoryview(fr)[:j + n + 2])
    finally:
        f.close()
    jn.hal.rename(tmp, jn._p(jn._name(segs[0])))
    lo = segs[0]
    for first in segs[1:group]:
        jn._rm(first)
    del segs[1:group]
    return (dropped, lo, seen)


class Keep:
    # thinning sink: last reading per meter and every event, records > after
    def __init__(self, after):
        self.top = after
        self.last = {}
        self.cnt = {}
        self.ev = []
        self.dropped = 0

    def append(self, r):
        if r[0] <= self.top:
            return
        self.top = r[0]
        if r[1]:
            self.ev.append(r)
            return
        m = r[2]
        if m in self.last:
            self.dropped += 1
            self.cnt[m] = 2
        else:
            self.cnt[m] = 1
        self.last[m] = r

    def records(self):
        out = list(self.ev)
        for m in self.last:
            r = self.last[m]
            if self.cnt[m] > 1:
                v = r[4]
                r = (r[0], r[1], r[2], r[3], (v[0], v[1], v[2] | FLAG_THINNED) + v[3:])
            out.append(r)
        out.sort()
        return out

    def drop_event(self):
        if not self.ev:
            return False
        self.ev.pop(0)
        self.dropped += 1
        return True
