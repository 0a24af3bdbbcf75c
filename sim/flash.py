"""Emulated NOR flash for littlefs-python, with power-loss injection.

``NorFlash`` is a littlefs block device (a ``littlefs.UserContext``) that
behaves like the SPI NOR flash of an ESP32:

* erase works on whole 4 KiB blocks and sets every byte to 0xFF;
* program can only clear bits (the new byte is ``old & data``);
* it counts reads, programs, erases and the bytes programmed;
* power can be cut on the N-th program or erase operation from now
  (``cut_after(n, partial=...)``).  An interrupted program leaves a prefix
  of its data written (NOR: that prefix is ANDed in), an interrupted erase
  leaves a prefix of the block erased.  After the cut the flash is frozen:
  every further program/erase fails with LFS_ERR_IO and changes nothing,
  reads still return the frozen bytes.  ``power_on()`` thaws it; a new
  ``FlashFS`` mounted over the same ``NorFlash`` must find a consistent
  filesystem (littlefs is power-loss resilient).

``FlashFS`` gives the file methods of the firmware HAL (``open``, ``remove``,
``rename``, ``listdir``, ``mkdir``, ``stat``, ``statvfs``) on top of a
littlefs mount, with MicroPython's conventions (``OSError(errno)``, ``stat``
and ``statvfs`` tuples), so a simulated HAL can delegate to it.  Operations
that fail because the power was cut raise ``PowerCut`` (not an OSError, so
firmware code that handles OSError cannot swallow a power cut).

The littlefs geometry matches MicroPython's ``VfsLfs2`` on the ESP32
(read_size 32, prog_size 32, cache 128, lookahead 32, block_cycles 100,
4096-byte blocks).
"""

import errno
import random
import weakref

import littlefs
from littlefs import LittleFS, LittleFSError, UserContext

BLOCK_SIZE = 4096
DEFAULT_SIZE = 1536 * 1024  # 1.5 MiB, a typical ESP32 "vfs" partition

LFS_ERR_IO = -5


class PowerCut(Exception):
    """The simulated supply failed during (or before) a flash operation."""


class NorFlash(UserContext):
    """A littlefs block device emulating NOR flash, with counters and power cuts."""

    def __init__(self, size=DEFAULT_SIZE, block_size=BLOCK_SIZE, image=None, seed=None):
        if size % block_size:
            raise ValueError("size must be a multiple of block_size")
        if image is not None:
            buf = bytearray(image)
            if len(buf) != size:
                raise ValueError("image size mismatch")
        else:
            buf = bytearray(b"\xff" * size)
        super().__init__(buffer=buf)
        self.size = size
        self.block_size = block_size
        self.block_count = size // block_size
        self.rng = random.Random(seed)
        self.dead = False
        self._cut_at = None  # absolute op number (programs + erases) that is interrupted
        self._cut_partial = None
        self.reset_counters()

    # ---- counters -------------------------------------------------------
    def reset_counters(self):
        self.reads = 0
        self.bytes_read = 0
        self.programs = 0
        self.bytes_programmed = 0
        self.erases = 0
        self.ops = 0  # programs + erases, the clock of power-cut injection

    def counters(self):
        return {
            "reads": self.reads,
            "bytes_read": self.bytes_read,
            "programs": self.programs,
            "bytes_programmed": self.bytes_programmed,
            "erases": self.erases,
        }

    # ---- power ----------------------------------------------------------
    def cut_after(self, n, partial=None):
        """Cut power during the n-th program/erase from now (n >= 1).

        ``partial``: number of bytes of that program (or of the erased block)
        that still make it to the flash; None picks a random prefix length
        (0 .. len-1), so the operation is always incomplete.
        """
        if n < 1:
            raise ValueError("n must be >= 1")
        self._cut_at = self.ops + n
        self._cut_partial = partial

    def cut_now(self):
        """Cut power between two operations: nothing in flight is damaged."""
        self.dead = True
        self._cut_at = None

    def power_on(self):
        self.dead = False
        self._cut_at = None

    def snapshot(self):
        return bytes(self.buffer)

    def _interrupted(self, length):
        if self._cut_at is None or self.ops != self._cut_at:
            return None
        p = self._cut_partial
        if p is None:
            p = self.rng.randrange(0, max(1, length))
        return max(0, min(p, length))

    # ---- littlefs block device callbacks ---------------------------------
    def read(self, cfg, block, off, size):
        self.reads += 1
        self.bytes_read += size
        start = block * self.block_size + off
        return self.buffer[start:start + size]

    def prog(self, cfg, block, off, data):
        if self.dead:
            return LFS_ERR_IO
        self.ops += 1
        n = len(data)
        part = self._interrupted(n)
        if part is not None:
            n = part
        start = block * self.block_size + off
        buf = self.buffer
        for i in range(n):
            buf[start + i] &= data[i]
        self.programs += 1
        self.bytes_programmed += n
        if part is not None:
            self.dead = True
            self._cut_at = None
            return LFS_ERR_IO
        return 0

    def erase(self, cfg, block):
        if self.dead:
            return LFS_ERR_IO
        self.ops += 1
        bs = self.block_size
        n = bs
        part = self._interrupted(bs)
        if part is not None:
            n = part
        start = block * bs
        self.buffer[start:start + n] = b"\xff" * n
        self.erases += 1
        if part is not None:
            self.dead = True
            self._cut_at = None
            return LFS_ERR_IO
        return 0

    def sync(self, cfg):
        return LFS_ERR_IO if self.dead else 0


_ERRNO = {
    -2: errno.ENOENT,
    -17: errno.EEXIST,
    -20: errno.ENOTDIR,
    -21: errno.EISDIR,
    -39: errno.ENOTEMPTY,
    -22: errno.EINVAL,
    -28: errno.ENOSPC,
    -5: errno.EIO,
    -84: errno.EIO,
    -9: errno.EBADF,
    -27: errno.EFBIG,
    -12: errno.ENOMEM,
    -36: errno.ENAMETOOLONG,
}


class FlashFS:
    """HAL file methods over a littlefs filesystem on a ``NorFlash``.

    ``FlashFS(flash)`` mounts (formatting only a blank flash, or when
    ``format=True``); mounting a damaged image raises OSError, it never
    formats silently.
    """

    def __init__(self, flash=None, format=False, **lfs_cfg):
        if flash is None:
            flash = NorFlash()
        self.flash = flash
        cfg = dict(block_size=flash.block_size, block_count=flash.block_count,
                   read_size=32, prog_size=32, cache_size=128,
                   lookahead_size=32, block_cycles=100)
        cfg.update(lfs_cfg)
        self.lfs = LittleFS(context=flash, mount=False, **cfg)
        self._handles = weakref.WeakSet()
        blank = flash.buffer.count(0xFF) == len(flash.buffer)
        if format or blank:
            self._call(self.lfs.format)
        self._call(self.lfs.mount)

    # ---- error mapping --------------------------------------------------
    def _abandon(self):
        # the RAM state of this mount died with the power: never touch littlefs
        # with its handles again (closing them would run littlefs on a dead mount)
        for fh in list(self._handles):
            # text files are TextIOWrapper -> BufferedWriter -> FileHandle: the
            # littlefs handle underneath must be marked too, or the garbage
            # collector closes it on the dead mount (littlefs asserts)
            for h in (fh, getattr(fh, "buffer", None),
                      getattr(getattr(fh, "buffer", None), "raw", None)):
                if h is None:
                    continue
                try:
                    setattr(h, "__IOBase_closed", True)
                except Exception:
                    pass
        self._handles = weakref.WeakSet()

    def _err(self, e, path=None):
        if self.flash.dead:
            self._abandon()
            return PowerCut("flash operation failed: power cut")
        code = getattr(e, "code", None)
        if code is None and isinstance(e, OSError):
            return e
        return OSError(_ERRNO.get(code, errno.EIO), path or str(e))

    def _call(self, fn, *args):
        if self.flash.dead:
            self._abandon()
            raise PowerCut("power is off")
        try:
            return fn(*args)
        except LittleFSError as e:
            raise self._err(e, args[0] if args and isinstance(args[0], str) else None) from None
        except (FileNotFoundError, FileExistsError, IsADirectoryError) as e:
            if self.flash.dead:
                raise PowerCut("power cut") from None
            code = {FileNotFoundError: errno.ENOENT, FileExistsError: errno.EEXIST,
                    IsADirectoryError: errno.EISDIR}[type(e)]
            raise OSError(code, args[0] if args else "") from None

    # ---- HAL file API ---------------------------------------------------
    def open(self, path, mode="r"):
        if "a" in mode:
            # MicroPython's "a" creates a missing file (littlefs-python's does not)
            try:
                self._call(self.lfs.stat, path)
            except OSError as e:
                if e.errno != errno.ENOENT:
                    raise
                mode = mode.replace("a", "w")
        if "b" in mode:
            fh = self._call(self.lfs.open, path, mode, 0)
            self._handles.add(fh)
            return _File(self, fh)
        fh = self._call(self.lfs.open, path, mode)
        self._handles.add(fh)
        return _File(self, fh)

    def remove(self, path):
        self._call(self.lfs.remove, path)

    def rename(self, a, b):
        self._call(self.lfs.rename, a, b)

    def listdir(self, path="/"):
        return self._call(lambda p: list(self.lfs.listdir(p)), path)

    def mkdir(self, path):
        self._call(self.lfs.mkdir, path)

    def rmdir(self, path):
        self._call(self.lfs.remove, path)     # littlefs removes an empty folder

    def stat(self, path):
        st = self._call(self.lfs.stat, path)
        mode = 0x4000 if st.type == 2 else 0x8000
        return (mode, 0, 0, 0, 0, 0, st.size, 0, 0, 0)

    def statvfs(self, path="/"):
        bs = self.flash.block_size
        total = self.flash.block_count
        used = self._call(lambda: self.lfs.used_block_count)
        free = max(0, total - used)
        return (bs, bs, total, free, free, 0, 0, 0, 0, 255)

    def unmount(self):
        self._call(self.lfs.unmount)


class _File:
    """A file object with the methods MicroPython's littlefs files have."""

    def __init__(self, fs, fh):
        self._fs = fs
        self._fh = fh

    def _do(self, fn, *args):
        fs = self._fs
        if fs.flash.dead:
            fs._abandon()
            raise PowerCut("power is off")
        try:
            return fn(*args)
        except LittleFSError as e:
            raise fs._err(e) from None
        except (OSError, ValueError):
            if fs.flash.dead:
                fs._abandon()
                raise PowerCut("power cut") from None
            raise

    def read(self, n=-1):
        if n is None or n < 0:
            return self._do(self._fh.read)
        return self._do(self._fh.read, n)

    def readinto(self, buf):
        return self._do(self._fh.readinto, buf)

    def readline(self):
        return self._do(self._fh.readline)

    def write(self, data):
        return self._do(self._fh.write, data)

    def seek(self, off, whence=0):
        return self._do(self._fh.seek, off, whence)

    def tell(self):
        return self._do(self._fh.tell)

    def flush(self):
        return self._do(self._fh.flush)

    def close(self):
        if self._fh.closed:
            return
        self._do(self._fh.close)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def __iter__(self):
        return iter(self._fh)
