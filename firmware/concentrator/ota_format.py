# Firmware bundles for over-the-air updates: the format, shared by the board
# (ota.py checks and stores what arrives) and the server side that builds,
# signs and sends bundles (the head-end's rollout, sim/ota_server.py,
# tools/ota.py). docs/protocol.md ("Firmware update") describes the flow.
#
# A bundle is the firmware's files (mpy-cross output, paths relative to the
# version's folder: concentrator/core.mpy, lib/umqtt/simple.mpy, ...) put
# back to back in manifest order. The manifest is JSON text:
#     {"fw": "0.2.0", "mpy": 6, "files": [[path, size, sha256 hex], ...]}
# signed with the device's own key: sig = HMAC-SHA256(key, manifest bytes),
# so each board checks that its head-end sent it. The bundle travels in
# chunks of `chunk` bytes (the last one shorter), chunk i covering bundle
# bytes [i * chunk, i * chunk + len); each chunk message is signed and
# counted like every downlink.
try:
    import ujson as json
except ImportError:
    import json
try:
    import ubinascii as binascii
except ImportError:
    import binascii
try:
    import uhashlib as hashlib
except ImportError:
    import hashlib

from concentrator import protocol as P

MAX_MANIFEST = 4096     # bytes of manifest text
MAX_FILES = 64
MAX_SIZE = 512 * 1024   # bytes of a whole bundle
MIN_CHUNK = 256
MAX_CHUNK = 4096        # a chunk message stays below protocol.MAX_MESSAGE
DEFAULT_CHUNK = 2048
DEFAULT_HEALTH_S = 300  # broker reached and a poll cycle done within this
_NAME_OK = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_.-"
TOPS = ("concentrator", "lib")   # what a bundle may contain


def _bad(what):
    raise ValueError("ota: " + what)


def check_path(p):
    # "concentrator/core.mpy": relative, plain names, under TOPS
    if type(p) is not str or not p or len(p) > 64:
        _bad("file path must be a short string")
    parts = p.split("/")
    if parts[0] not in TOPS or len(parts) < 2 or len(parts) > 4:
        _bad("file %s must be under concentrator/ or lib/" % p)
    for part in parts:
        if not part or part[0] == "." or len(part) > 32:
            _bad("bad file path %s" % p)
        for c in part:
            if c not in _NAME_OK:
                _bad("bad character in file path %s" % p)
    return p


def parse_manifest(text):
    # manifest text -> {"fw", "mpy", "files": [[path, size, sha], ...], "size"}
    if type(text) is not str or not text or len(text) > MAX_MANIFEST:
        _bad("manifest must be JSON text of at most %d bytes" % MAX_MANIFEST)
    try:
        m = json.loads(text)
    except Exception:
        _bad("manifest is not JSON")
    if type(m) is not dict:
        _bad("manifest must be an object")
    fw = m.get("fw")
    if type(fw) is not str or not fw or len(fw) > 24:
        _bad("manifest.fw must be a version string")
    if type(m.get("mpy", 0)) is not int:
        _bad("manifest.mpy must be an integer")
    files = m.get("files")
    if type(files) is not list or not files or len(files) > MAX_FILES:
        _bad("manifest.files must list 1 to %d files" % MAX_FILES)
    total = 0
    seen = {}
    for f in files:
        if type(f) is not list or len(f) != 3:
            _bad("manifest.files entries are [path, size, sha256]")
        check_path(f[0])
        if f[0] in seen:
            _bad("file %s listed twice" % f[0])
        seen[f[0]] = 1
        if type(f[1]) is not int or f[1] < 1 or f[1] > MAX_SIZE:
            _bad("file %s: bad size" % f[0])
        if type(f[2]) is not str or len(f[2]) != 64:
            _bad("file %s: sha256 must be 64 hex digits" % f[0])
        total += f[1]
    if total > MAX_SIZE:
        _bad("bundle of %d bytes is larger than %d" % (total, MAX_SIZE))
    if "concentrator/core.mpy" not in seen and "concentrator/core.py" not in seen:
        _bad("a bundle must contain the concentrator package")
    m["size"] = total
    return m


def bundle_id(manifest_text):
    # short id of a bundle: the first 16 hex digits of the manifest's SHA-256
    h = hashlib.sha256(manifest_text.encode())
    return binascii.hexlify(h.digest()).decode()[:16]


def sign(manifest_text, key):
    return P.hexlify(P.hmac_sha256(key, manifest_text.encode()))


def check_sig(manifest_text, sig, key):
    return type(sig) is str and len(sig) == 64 and \
        P._same(sig.encode(), sign(manifest_text, key).encode())


def nchunks(size, chunk):
    return (size + chunk - 1) // chunk


def _int(body, k, lo, hi):
    x = body.get(k)
    if type(x) is not int or x < lo or x > hi:
        _bad("%s must be an integer between %d and %d" % (k, lo, hi))
    return x


def _id(body):
    i = body.get("id")
    if type(i) is not str or len(i) != 16:
        _bad("id must be the 16-digit bundle id")
    return i


def check_offer(body):
    # cmd {"op": "ota", "id", "manifest" (text), "sig", "chunk", "health_s"}
    # or {"op": "ota", "id", "cancel": true}
    for k in body:
        if k not in P.ENVELOPE and k not in ("op", "exp", "id", "manifest", "sig", "chunk",
                                               "health_s", "cancel"):
            _bad("unknown field %s" % k)
    _id(body)
    if body.get("cancel") is not None:
        if body["cancel"] is not True:
            _bad("cancel must be true")
        return body
    m = parse_manifest(body.get("manifest"))
    if body["id"] != bundle_id(body["manifest"]):
        _bad("id does not match the manifest")
    s = body.get("sig")
    if type(s) is not str or len(s) != 64:
        _bad("sig must be 64 hex digits")
    _int(body, "chunk", MIN_CHUNK, MAX_CHUNK)
    if "health_s" in body:
        _int(body, "health_s", 10, 3600)
    return m


def check_chunk(body):
    # {"t": "ota", "id", "i", "d": base64 of the chunk's bytes}
    for k in body:
        if k not in P.ENVELOPE and k not in ("id", "i", "d"):
            _bad("unknown field %s" % k)
    _id(body)
    _int(body, "i", 0, MAX_SIZE // MIN_CHUNK)
    d = body.get("d")
    if type(d) is not str or not d or len(d) > (MAX_CHUNK + 2) // 3 * 4:
        _bad("d must be base64 of at most %d bytes" % MAX_CHUNK)
    return body


def chunk_data(body):
    try:
        return binascii.a2b_base64(body["d"])
    except Exception:
        _bad("d is not base64")


# ---- the server side (CPython and MicroPython alike) -----------------------------
def build(files, fw, mpy=6):
    # files: [(path, bytes)] in the order they go into the bundle
    # -> (manifest text, bundle bytes)
    ent = []
    parts = []
    for path, data in files:
        check_path(path)
        ent.append([path, len(data), binascii.hexlify(hashlib.sha256(data).digest()).decode()])
        parts.append(data)
    text = json.dumps({"fw": fw, "mpy": mpy, "files": ent})
    parse_manifest(text)
    return text, b"".join(parts)


def offer_fields(manifest_text, key, chunk=DEFAULT_CHUNK, health_s=DEFAULT_HEALTH_S):
    # the fields of the cmd {"op": "ota"} for one board (signed with its key)
    return {"op": "ota", "id": bundle_id(manifest_text), "manifest": manifest_text,
            "sig": sign(manifest_text, key), "chunk": chunk, "health_s": health_s}


def chunk_fields(manifest_text, bundle, i, chunk):
    # the fields of the "ota" message carrying chunk i
    d = bundle[i * chunk:(i + 1) * chunk]
    if not d:
        _bad("no chunk %d" % i)
    return {"id": bundle_id(manifest_text), "i": i,
            "d": binascii.b2a_base64(d).decode().strip()}
