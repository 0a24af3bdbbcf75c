# Over-the-air update, the board's side (docs/protocol.md, "Firmware
# update"). Loaded only while an update is offered, downloading, staged or
# on trial; the format is ota_format.py, the boot-time switch fwboot.py.
#
#   offer (cmd op "ota"): signature checked with the device key, the other
#       version's folder emptied, /ota.json written: {"id", "slot", "chunk",
#       "size", "fw", "health_s", "st": "download"}
#   chunks ("ota" messages): written straight into the files of the new
#       version's folder (/fw/a or /fw/b, beside the running one), in
#       order; a chunk that is not the next one is ignored. Where the
#       download stands is the files' sizes, so it resumes after a reconnect
#       or a power cut; every OTA_WINDOW chunks (and when nothing came for a
#       while) the board says which chunk it needs next (uplink "otast").
#   complete: every file's SHA-256 checked against the signed manifest (a
#       bad file is fetched again), then fwboot.stage(): the next boot
#       switches to it, on trial. The board resets at its next quiet moment.
#   trial: once the broker is reached and a poll cycle is done within
#       health_s, fwboot.confirm(); otherwise fwboot.rollback() and a reset.
try:
    import uhashlib as hashlib
except ImportError:
    import hashlib
try:
    import ubinascii as binascii
except ImportError:
    import binascii
import sys

from concentrator import fwboot
from concentrator import ota_format as F
from concentrator import protocol as P

OTA_FILE = "/ota.json"
OTA_WINDOW = 8          # chunks the server sends per request of the board
STALL_MS = 10000        # nothing came for this long: ask again (doubling to 60 s)
MAX_RETRIES = 3         # a bundle whose files keep failing their hash is dropped


class Updater:
    def __init__(self, app):
        self.app = app
        self.hal = app.hal
        self.st = "idle"            # idle, download, staged, trial, confirmed, rolled_back, refused
        self.id = None
        self.job = None             # /ota.json while downloading / staged
        self.files = None           # manifest files [[path, size, sha], ...]
        self.off = 0                # bundle bytes in flash
        self.retries = 0
        self.why = None
        self.stall_ms = STALL_MS
        self.last_ms = 0
        self.reset_pending = False
        self.trial_until = None
        p = app.fw_pointer
        if p is not None and p.get("trial"):
            self.st = "trial"
            self.id = p.get("id")
            self.trial_until = self.hal.net_ticks_ms() + p.get("health_s", 300) * 1000
            return
        job = self.hal.read_json(OTA_FILE, None)
        if isinstance(job, dict) and job.get("st") == "staged" and \
                (p or {}).get("next") != job.get("slot"):
            job = None                     # switched since (or rolled back): done with it
            self._rm_job()
        if isinstance(job, dict) and job.get("st") in ("download", "staged"):
            try:
                self._load(job)
            except (OSError, ValueError, KeyError, TypeError):
                self._drop("resume failed")

    # -- state ------------------------------------------------------------------
    def _load(self, job):
        d = fwboot.slot_path(job["slot"])
        with self.hal.open(d + "/manifest.json", "r") as f:
            text = f.read()
        m = F.parse_manifest(text)
        if F.bundle_id(text) != job["id"]:
            raise ValueError("manifest changed")
        self.job = job
        self.id = job["id"]
        self.files = m["files"]
        self.st = job["st"]
        if self.st == "download":
            self.off = self._progress()

    def _dir(self):
        return fwboot.slot_path(self.job["slot"])

    def _size(self, path):
        try:
            return self.hal.stat(path)[6]
        except OSError:
            return -1

    def _progress(self):
        # bundle bytes already in flash: the files' sizes, in manifest order
        d = self._dir()
        off = 0
        for path, size, sha in self.files:
            n = self._size(d + "/" + path)
            if n == size:
                off += size
                continue
            if n > size:                   # cannot be ours: fetch it again
                self.hal.remove(d + "/" + path)
                n = 0
            return off + max(n, 0)
        return off

    def status(self):
        # what hello and otast say about the update
        out = {"id": self.id, "st": self.st}
        if self.st == "download":
            out["next"] = self.off // self.job["chunk"]
        if self.why:
            out["why"] = self.why
        return out

    def idle(self):
        return self.st in ("idle", "confirmed", "refused", "rolled_back") and not self.reset_pending

    def _report(self):
        if self.app.link.connected:
            self.app._send(P.OTA_STATUS, fw=self.app.fw_version, **self.status())
        self.last_ms = self.hal.net_ticks_ms()

    def _drop(self, why, code=P.OTA_ABANDONED):
        if self.job is not None:
            self.app._event(P.EV_OTA, 0, code)
        self.job = None
        self.files = None
        self.st = "refused" if code == P.OTA_REFUSED else "idle"
        self.why = why
        self._rm_job()
        self.hal.log("ota: %s" % why)

    def _rm_job(self):
        try:
            self.hal.remove(OTA_FILE)
        except OSError:
            pass

    # -- offer --------------------------------------------------------------------
    def on_offer(self, body, key):
        # body passed schema.check_command (ota_format.check_offer)
        bid = body["id"]
        if body.get("cancel"):
            if self.st == "staged" and self.id == bid:
                fwboot.unstage(self.hal)
                self.reset_pending = False
            if self.id == bid and self.st in ("download", "staged"):
                self._drop("cancelled")
            self._report()
            return
        p = self.app.fw_pointer or {}
        if self.st == "trial" or (self.id == bid and self.st in ("download", "staged")) or \
                p.get("id") == bid:
            if p.get("id") == bid and self.st not in ("trial", "download", "staged"):
                self.id, self.st, self.why = bid, "confirmed", None
            self._report()                 # already on it: say where it stands
            return
        text = body["manifest"]
        if not F.check_sig(text, body.get("sig"), key):
            self.id = bid
            self._drop("bad signature", P.OTA_REFUSED)
            self._report()
            return
        m = F.parse_manifest(text)
        mpy = m.get("mpy")
        if sys.implementation.name == "micropython" and mpy and \
                mpy != sys.implementation._mpy & 0xFF:
            self.id = bid
            self._drop("bytecode v%d, the board runs v%d" % (mpy, sys.implementation._mpy & 0xFF),
                       P.OTA_REFUSED)
            self._report()
            return
        if self.job is not None:
            if self.st == "staged":
                fwboot.unstage(self.hal)
            self._drop("replaced by %s" % bid)
        run = p.get("run", "")
        slot = fwboot.other(run) if run else "a"
        d = fwboot.slot_path(slot)
        self._clear(d)
        free = self._free()
        if free < m["size"] + 4 * 4096:
            self.id = bid
            self._drop("no room: %d bytes free, %d needed" % (free, m["size"]), P.OTA_REFUSED)
            self._report()
            return
        self._mkdirs(d, [f[0] for f in m["files"]])
        with self.hal.open(d + "/manifest.json", "w") as f:
            f.write(text)
        job = {"id": bid, "slot": slot, "chunk": body["chunk"], "size": m["size"],
               "fw": m["fw"], "health_s": body.get("health_s", F.DEFAULT_HEALTH_S),
               "st": "download"}
        self.hal.write_json(OTA_FILE, job)
        self.job = job
        self.id = bid
        self.files = m["files"]
        self.off = 0
        self.st = "download"
        self.why = None
        self.retries = 0
        self.hal.log("ota: %s (%s, %d bytes) into %s" % (bid, m["fw"], m["size"], d))
        self._report()

    def _free(self):
        try:
            v = self.hal.statvfs("/")
            return v[0] * v[3]
        except (OSError, AttributeError):
            return 1 << 30

    def _clear(self, d):
        # empty the other version's folder (never the running one)
        try:
            self.hal.stat(d)
        except OSError:
            self._mkdirs("", [d.lstrip("/") + "/x"])
            return
        self._rm(d, 0)
        self.hal.mkdir(d)

    def _rm(self, path, depth):
        try:
            isdir = self.hal.stat(path)[0] & 0x4000
        except OSError:
            return
        if isdir:
            if depth < 4:
                for name in self.hal.listdir(path):
                    self._rm(path + "/" + name, depth + 1)
            self.hal.rmdir(path)
        else:
            self.hal.remove(path)

    def _mkdirs(self, d, paths):
        done = {}
        for path in paths:
            parts = path.split("/")[:-1]
            cur = d
            for part in parts:
                cur = cur + "/" + part
                if cur in done:
                    continue
                done[cur] = 1
                try:
                    self.hal.mkdir(cur)
                except OSError:
                    pass

    # -- chunks --------------------------------------------------------------------
    def on_chunk(self, body):
        # body passed ota_format.check_chunk
        if self.st != "download" or body["id"] != self.id:
            return
        chunk = self.job["chunk"]
        i = body["i"]
        if i != self.off // chunk:
            return                         # not the one we need: costs nothing
        data = F.chunk_data(body)
        skip = self.off - i * chunk
        if len(data) != min(chunk, self.job["size"] - i * chunk) or skip >= len(data):
            return
        self._write(data, skip)
        self.last_ms = self.hal.net_ticks_ms()
        self.stall_ms = STALL_MS
        if self.off >= self.job["size"]:
            self._finish()
        elif (i + 1) % OTA_WINDOW == 0:
            self._report()

    def _write(self, data, skip):
        d = self._dir()
        pos = 0                            # bundle offset of the file's start
        for path, size, sha in self.files:
            end = pos + size
            if self.off < end and skip < len(data):
                n = min(end - self.off, len(data) - skip)
                with self.hal.open(d + "/" + path, "ab") as f:
                    f.write(data[skip:skip + n])
                skip += n
                self.off += n
            pos = end

    def _finish(self):
        bad = self._verify()
        if bad is not None:
            self.retries += 1
            if self.retries > MAX_RETRIES:
                self._drop("files keep failing their check", P.OTA_REFUSED)
                self._report()
                return
            self.off = self._progress()
            self.hal.log("ota: %s failed its check, fetched again" % bad)
            self._report()
            return
        job = self.job
        fwboot.stage(self.hal, job["slot"], job["id"], job["fw"], job["health_s"])
        job["st"] = "staged"
        self.hal.write_json(OTA_FILE, job)
        self.st = "staged"
        self.app._event(P.EV_OTA, 0, P.OTA_STAGED)
        self.hal.log("ota: %s staged, switching at the next boot" % job["id"])
        self._report()
        self.reset_pending = True

    def _verify(self):
        # None when every file matches its SHA-256; else the first bad path
        # (removed, with the files after it, so they are fetched again)
        d = self._dir()
        bad = None
        for path, size, sha in self.files:
            full = d + "/" + path
            if bad is None and self._hash(full, size) == sha:
                continue
            if bad is None:
                bad = path
            try:
                self.hal.remove(full)
            except OSError:
                pass
        return bad

    def _hash(self, path, size):
        h = hashlib.sha256()
        n = 0
        try:
            with self.hal.open(path, "rb") as f:
                while True:
                    b = f.read(512)
                    if not b:
                        break
                    n += len(b)
                    h.update(b)
        except OSError:
            return None
        if n != size:
            return None
        return binascii.hexlify(h.digest()).decode()

    # -- every step -------------------------------------------------------------------
    def step(self):
        app = self.app
        now = self.hal.net_ticks_ms()
        if self.st == "trial":
            if app.link.connected and app.hello_sent and app.cycles > 0 and \
                    (app.answered > 0 or not app.meters):
                app.fw_pointer = fwboot.confirm(self.hal)
                self.st = "confirmed"
                self._rm_job()
                app._event(P.EV_OTA, 0, P.OTA_CONFIRMED)
                self.hal.log("ota: %s passed its health check" % app.fw_version)
                self._report()
            elif now - self.trial_until > 0:
                fwboot.rollback(self.hal)
                self._rm_job()
                app._event(P.EV_OTA, 0, P.OTA_ROLLED_BACK)
                app.journal.flush()
                self.hal.log("ota: health check failed (broker %s, %d poll cycles, %d readings):"
                             " rolling back" % ("reached" if app.hello_sent else "not reached",
                                               app.cycles, app.answered))
                self.hal.reset()
            return
        if self.reset_pending:
            if not app.unflushed and not app.cycle_open:
                app._save_state()
                app.journal.flush()
                self.hal.log("ota: reset to switch version")
                self.hal.reset()
            return
        if self.st == "download" and app.link.connected and now - self.last_ms >= self.stall_ms:
            self.stall_ms = min(self.stall_ms * 2, 60000)
            self._report()
