# Boot-time setup of the virtual board's VM (runs before boot.py; not on the flash).
# Makes the WebAssembly VM look like an ESP32: flash mounted at "/", MicroPython
# errno numbers, statvfs of a 1.5 MiB flash, ESP32 time (epoch 2000), and the
# hardware modules machine / network / socket (usocket).
import sys
import os
import time
import builtins
import _vbhost as _h

# Emscripten (WASI) errno -> MicroPython errno
_ERRNO = {63: 1, 44: 2, 29: 5, 8: 9, 6: 11, 48: 12, 2: 13, 10: 16, 20: 17, 43: 19,
          54: 20, 31: 21, 28: 22, 51: 28, 69: 30, 37: 36, 55: 39}
_EPOCH = 946684800        # 2000-01-01 in Unix seconds
_BLOCK = 4096
_BLOCKS = 384             # 1.5 MiB


def _wrap(f):
    def w(*a):
        try:
            return f(*a)
        except OSError as e:
            n = e.errno
            if n in _ERRNO:
                raise OSError(_ERRNO[n])
            raise
    return w


def _statvfs(path="/"):
    os.stat(path)
    free = _BLOCKS - _h.used_blocks()
    return (_BLOCK, _BLOCK, _BLOCKS, free, free, 0, 0, 0, 0, 255)


class _Uname(tuple):
    sysname = property(lambda s: s[0])
    nodename = property(lambda s: s[1])
    release = property(lambda s: s[2])
    version = property(lambda s: s[3])
    machine = property(lambda s: s[4])


def _uname():
    v = sys.implementation.version
    rel = "%d.%d.%d" % (v[0], v[1], v[2])
    return _Uname(("esp32", "esp32", rel, "v" + rel + " (Wattkeeper virtual board)",
                   "Wattkeeper virtual board with ESP32"))


def _rel(p, cwd):
    return (p if p[:1] == "/" else cwd.rstrip("/") + "/" + p).lstrip("/")


def _patch_os():
    _stat = _wrap(os.stat)
    _ilist = os.ilistdir

    def ilistdir(p="."):
        try:
            it = _ilist(p)
        except OSError as e:
            raise OSError(_ERRNO.get(e.errno, e.errno))
        base = p if p not in ("", ".") else ""
        for e in it:
            if len(e) == 3:
                size = 0
                if e[1] == 0x8000:
                    try:
                        size = _stat((base + "/" if base and base[-1] != "/" else base) + e[0])[6]
                    except OSError:
                        pass
                e = (e[0], e[1], e[2], size)
            yield e
    for n in ("listdir", "mkdir", "rmdir", "remove", "unlink", "rename", "chdir"):
        if hasattr(os, n):
            setattr(os, n, _wrap(getattr(os, n)))
    _ren = os.rename

    def rename(a, b):
        # the port's VfsPosix mishandles absolute paths in rename: go through
        # paths relative to the root of the flash
        if a[:1] == "/" or b[:1] == "/":
            cwd = os.getcwd()
            os.chdir("/")
            try:
                return _ren(_rel(a, cwd), _rel(b, cwd))
            finally:
                os.chdir(cwd)
        return _ren(a, b)
    os.rename = rename
    os.stat = _stat
    os.ilistdir = ilistdir
    os.statvfs = _statvfs
    os.uname = _uname
    os.sync = _h.flash_sync
    builtins.open = _wrap(open)


def _patch_time():
    gm = time.gmtime
    mk = time.mktime

    def gmtime(s=None):
        if s is None:
            s = _h.wall_s()
        return gm(int(s) + _EPOCH)

    def sleep_ms(ms):
        if ms > 0:
            _h.sleep_ms(ms)

    time.time = _h.wall_s
    time.time_ns = lambda: (_h.wall_s() * 1000 + _h.wall_ms_frac()) * 1000000
    time.gmtime = gmtime
    time.localtime = gmtime
    time.mktime = lambda t: mk(t) - _EPOCH
    time.sleep_ms = sleep_ms
    time.sleep_us = lambda us: sleep_ms(us / 1000)
    time.sleep = lambda s: sleep_ms(s * 1000)


def setup():
    _patch_os()
    _patch_time()
    import machine
    import network
    import socket
    import vboard
    import _vbrun
    sys.modules["usocket"] = socket
    # the board's flash is "/" (only the flash is visible, as on an ESP32)
    os.umount("/")
    os.mount(os.VfsPosix("/flash"), "/")
    os.chdir("/")
    sys.path[:] = ["", ".frozen", "/lib"]
