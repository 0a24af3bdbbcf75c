"""A whole simulated site: N virtual concentrators x M simulated meters.

Each concentrator runs the real firmware package (CPython) on a simulated HAL:
its own RS485 bus with simulated meters, its own virtual clock, files in a
host folder, and a real MQTT connection to a real broker. The site advances
virtual time in ticks; `speed` (virtual seconds per wall second) paces it for
people watching the dashboard, `speed=None` runs as fast as it can.
"""
import copy
import os
import secrets
import shutil
import tempfile
import time

from sim.bus import Bus
from sim.clock import VirtualClock
from sim.flash import FlashFS, NorFlash, PowerCut
from sim.hal import Contactor, HostFS, SimHal
from sim.load import LoadProfile
from sim.dlt645_meter import Dlt645Meter
from sim.modbus_meter import PrepaidIntMeter, SDM120Meter
from sim.watchdog import StepWatchdog, WatchdogReset

from concentrator import fwboot  # noqa: E402
from concentrator.core import Concentrator  # noqa: E402  (sim.hal set the path)

# 2026-11-01 00:00 China Standard Time
DEFAULT_START = 1793462400


def new_device_key():
    """A board's HMAC key: 32 random bytes, as `wattkeeper provision` makes them."""
    return secrets.token_hex(32)


def new_broker_password():
    return secrets.token_urlsafe(24)


class VirtualConcentrator:
    """One concentrator: firmware + simulated HAL + its bus and meters."""

    def __init__(self, cfg, bus, meters, contactors, fs, start_unix, flash=None,
                 wdt_wall_s=5.0, wdt_virtual_s=30.0):
        # flash: a sim.flash.NorFlash; the board's files are then littlefs on
        # it (fs is ignored and re-mounted at every power-on), and a PowerCut
        # out of the firmware power-cycles the board.
        self.flash = flash
        self.cuts = 0                 # power cuts that hit this board
        self.watchdog = StepWatchdog(wdt_wall_s, wdt_virtual_s)
        self.watchdog_resets = 0
        self.boot_block_reads = []    # flash block reads of each completed boot
        self._boot_reads0 = None
        self.cfg = cfg
        self.bus = bus
        self.clock = bus.clock
        self.meters = meters          # simulated meters, config order
        self.contactors = contactors
        self.fs = fs
        self.start_unix = start_unix
        self.power_cycles = 0
        self.hal = None
        self.fw = None
        self.boot_pointer = None      # /boot.json after this boot's fwboot.select()
        self.on_boot = None           # callback(vc) at every boot (tests: check the version)
        self.resets = 0               # resets the firmware asked for (hal.reset())
        self.virtual_net = False      # network timers on the virtual clock (offline tests)
        self.power_on()

    def power_on(self):
        while True:
            if self.flash is not None:
                self.flash.power_on()
                self._boot_reads0 = self.flash.reads
                self.fs = FlashFS(self.flash)    # never formats a non-blank flash
            try:
                # what boot.py does on the board: pick the firmware version
                # (fwboot.py: switch to a staged one, count trial boots, roll
                # back). The code that runs is this process's firmware package
                # either way; the version is what the board reports.
                self.boot_pointer = fwboot.select(self.fs)
                break
            except PowerCut:
                self.cuts += 1                   # the power failed again while booting
                self.fs._abandon()
        if self.on_boot is not None:
            self.on_boot(self)
        self.hal = SimHal(self.clock, self.bus.uart, self.fs, self.start_unix,
                          self.contactors, socket_timeout=2.0)
        self.hal.virtual_net = self.virtual_net
        # a board reads /config.json afresh at every boot: the firmware keeps
        # per-meter RAM state (bus statistics) inside its config, which must
        # not survive a power cycle
        self.fw = Concentrator(self.hal, copy.deepcopy(self.cfg))

    def power_cycle(self):
        """Power fails and comes back: RAM is lost, flash stays, the TCP
        connection dies without a DISCONNECT."""
        link = self.fw.link
        if link.client is not None and link.client.sock is not None:
            try:
                link.client.sock.close()
            except Exception:
                pass
        if isinstance(self.fs, FlashFS):
            self.fs._abandon()   # the old mount's RAM state died with the power
        self.power_cycles += 1
        self.power_on()

    def step(self):
        # One firmware step under the watchdog. A power cut (PowerCut out of
        # the firmware, or a cut the firmware swallowed) or a watchdog bite
        # power-cycles the board; the step then reports 0 (more work).
        try:
            r = self.watchdog.run(self.fw.step, self.clock, self.hal)
        except PowerCut:
            r = None
        except SystemExit as e:
            if e.args != ("reset",):
                raise
            self.resets += 1                 # the firmware reset the board (OTA switch...)
            self.power_cycle()
            return 0
        except WatchdogReset:
            self.watchdog_resets += 1
            self.hal.log("watchdog reset: " + self.watchdog.last_reason)
            self.power_cycle()
            return 0
        if self.flash is not None and self.flash.dead:
            self.cuts += 1
            self.power_cycle()
            return 0
        if self._boot_reads0 is not None and self.fw.booted:
            self.boot_block_reads.append(self.flash.reads - self._boot_reads0)
            self._boot_reads0 = None
        return r

    @property
    def dev(self):
        return self.cfg["dev"]

    def truth(self):
        """Ground truth of every meter: [(meter id, energy Wh, relay closed)]."""
        out = []
        for mc, sm in zip(self.cfg["meters"], self.meters):
            sm.advance(self.clock.now_us)
            closed = sm.relay_closed and sm.supply_closed
            out.append((mc["id"], sm.energy_wh, closed))
        return out


# The mixed bus (Site(mix="mixed")): meter k of a concentrator is, by k % 4,
#   0  SDM120 (Modbus, FC 04 floats) behind a GPIO contactor (first 4 only,
#      then a prepaid Modbus meter)
#   1  prepaid-int (Modbus, holding registers, own relay via FC 06)
#   2  dlt645-2007 (DL/T 645, one data ID per request, own relay via 0x1C)
#   3  dlt645-2007-prepaid (DL/T 645 prepaid: balance, direct close via 0x1C)
# All on ONE bus at 9600 baud 8E1: the Modbus meters' usual setting and one
# that most DL/T 645-2007 meters can be programmed to (their default is
# 2400 8E1; a bus of DL/T 645 meters only could stay at 2400, but Modbus
# meters at 2400 would make every poll four times slower). The DL/T 645
# meter entries carry "baud": 9600 so the master uses it for them too.
MIXED_BAUD = 9600
MIXED_PARITY = "E"


def mixed_dlt645(c, k, mid, load, e0, start_unix, tz_offset_s):
    """A DL/T 645 meter for slot k of concentrator c: (sim meter, config entry)."""
    addr = "%012d" % (20260000000 + (c + 1) * 1000 + k + 1)
    prepaid = k % 4 == 3
    sm = Dlt645Meter(addr, load=load, energy_wh=e0, start_unix=start_unix,
                     tz_offset_s=tz_offset_s, turnaround_us=20000,
                     balance_mu=100_0000 if prepaid else None,
                     price_mu_per_kwh=6000 if prepaid else 0)
    sm.baud = MIXED_BAUD
    sm.parity = MIXED_PARITY
    entry = {"id": mid, "addr": addr, "baud": MIXED_BAUD, "parity": MIXED_PARITY,
             "model": "dlt645-2007-prepaid" if prepaid else "dlt645-2007"}
    return sm, entry


class Site:
    def __init__(self, name="demo", concentrators=2, meters=8, broker=("127.0.0.1", 1883),
                 seed=1, start_unix=DEFAULT_START, poll_s=60, record_s=900, status_s=300,
                 keepalive_s=30, workdir=None, base_w=None, opening_energy_wh=None,
                 tz_offset_s=28800, price_mu_per_kwh=None, tariff=None, flash="host",
                 flash_bytes=1536 * 1024, wdt_wall_s=5.0, wdt_virtual_s=30.0,
                 mix="modbus", keys=None, broker_passwords=None):
        # keys, broker_passwords: {device id: key hex / MQTT password}; a board
        # not named gets a random key and password (its MQTT user name is its
        # device id). Pass them to keep a test reproducible.
        # mix: "modbus" (SDM120s behind GPIO contactors + prepaid Modbus
        # meters, the default) or "mixed" (the same plus DL/T 645-2007
        # meters on the same bus: see mixed_dlt645 and docs/meters.md)
        if mix not in ("modbus", "mixed"):
            raise ValueError("mix must be 'modbus' or 'mixed'")
        # flash: "host" (files in a host folder, the default) or "littlefs"
        # (littlefs on an emulated NOR flash per board: vc.flash, power cuts)
        if flash not in ("host", "littlefs"):
            raise ValueError("flash must be 'host' or 'littlefs'")
        self.name = name
        self.seed = seed
        self.start_unix = start_unix
        self.broker = broker
        self.own_workdir = workdir is None
        self.workdir = workdir or tempfile.mkdtemp(prefix="wk-site-")
        self.t_us = 0
        self.concentrators = []
        for c in range(concentrators):
            dev = "%s-c%d" % (name, c + 1)
            clock = VirtualClock()
            bus = Bus(clock, seed=seed * 100 + c)
            sim_meters, contactors, mcfg = [], [], []
            for k in range(meters):
                addr = k + 1
                mid = "C%d-%03d" % (c + 1, 101 + k)
                load = LoadProfile(seed=seed * 1000 + c * 100 + k, base_w=base_w,
                                   epoch_s=start_unix, tz_offset_s=tz_offset_s)
                e0 = opening_energy_wh if opening_energy_wh is not None else 1000 * (k + 1) * 37
                entry = {"id": mid, "addr": addr, "parity": "E"}
                if mix == "mixed" and k % 4 >= 2:
                    sm, entry = mixed_dlt645(c, k, mid, load, e0, start_unix, tz_offset_s)
                elif mix == "mixed" and k % 4 == 0 and len(contactors) < 4:
                    sm = SDM120Meter(addr, load=load, energy_wh=e0)
                    sm.parity = "E"
                    entry["model"] = "sdm120"
                    entry["relay"] = len(contactors)
                    contactors.append(Contactor(clock, [sm]))
                elif mix == "mixed":
                    sm = PrepaidIntMeter(addr, load=load, energy_wh=e0)
                    entry["model"] = "prepaid-int"
                elif k % 2 == 0 and len(contactors) < 4:
                    sm = SDM120Meter(addr, load=load, energy_wh=e0)
                    sm.parity = "E"
                    entry["model"] = "sdm120"
                    entry["relay"] = len(contactors)
                    contactors.append(Contactor(clock, [sm]))
                else:
                    sm = PrepaidIntMeter(addr, load=load, energy_wh=e0)
                    entry["model"] = "prepaid-int"
                bus.attach(sm)
                sim_meters.append(sm)
                mcfg.append(entry)
            cfg = {
                "dev": dev, "key": (keys or {}).get(dev) or new_device_key(), "site": name,
                "tz_offset_s": tz_offset_s, "poll_s": poll_s, "record_s": record_s,
                "status_s": status_s,
                "broker": {"host": broker[0], "port": broker[1], "keepalive_s": keepalive_s,
                           "user": dev, "password": (broker_passwords or {}).get(dev) or new_broker_password()},
                "meters": mcfg,
            }
            if price_mu_per_kwh is not None:
                cfg["price"] = price_mu_per_kwh
            if tariff is not None:
                cfg["tariff"] = tariff      # as provisioned; the head-end pushes updates
            nor = None
            if flash == "littlefs":
                fs = None
                nor = NorFlash(flash_bytes, seed=seed * 100 + c)
            else:
                fs = HostFS(os.path.join(self.workdir, dev))
            self.concentrators.append(
                VirtualConcentrator(cfg, bus, sim_meters, contactors, fs, start_unix, flash=nor,
                                    wdt_wall_s=wdt_wall_s, wdt_virtual_s=wdt_virtual_s))

    # -- provisioning ------------------------------------------------------------
    def provisioning(self):
        """What the head-end must know: for headend.services.seed.seed_site."""
        out = []
        for vc in self.concentrators:
            ms = []
            for mc, sm in zip(vc.cfg["meters"], vc.meters):
                ms.append({"id": mc["id"], "model": mc["model"],
                           "opening_energy_wh": sm.energy_wh})
            out.append({"dev": vc.dev, "key_hex": vc.cfg["key"], "meters": ms})
        return out

    def broker_passwords(self):
        """{device id: MQTT password} of the boards (for the broker's password file)."""
        return {vc.dev: vc.cfg["broker"]["password"] for vc in self.concentrators}

    def concentrator(self, dev):
        for vc in self.concentrators:
            if vc.dev == dev:
                return vc
        raise KeyError(dev)

    # -- time ----------------------------------------------------------------------
    def now(self):
        return self.start_unix + self.t_us // 1000000

    def tick(self, tick_us):
        self.t_us += tick_us
        for vc in self.concentrators:
            vc.clock.advance_to(self.t_us)
            for _ in range(4):
                if vc.step() > 0:
                    break

    def run(self, seconds, tick_s=1, speed=None, until=None, wall_timeout=None):
        """Advance `seconds` of virtual time. `until()` -> True stops early.
        Returns the virtual seconds actually run."""
        tick_us = int(tick_s * 1000000)
        end = self.t_us + int(seconds * 1000000)
        t0_virtual = self.t_us
        t0_wall = time.monotonic()
        while self.t_us < end:
            self.tick(min(tick_us, end - self.t_us))
            if until is not None and until():
                break
            if speed:
                ahead = (self.t_us - t0_virtual) / 1e6 / speed - (time.monotonic() - t0_wall)
                if ahead > 0:
                    time.sleep(ahead)
            if wall_timeout is not None and time.monotonic() - t0_wall > wall_timeout:
                break
        return (self.t_us - t0_virtual) // 1000000

    def settle(self, wall_s=5.0, tick_s=1, until=None):
        """Keep stepping in small virtual ticks, in wall time, so MQTT traffic
        (acks, credit pushes) can arrive. Stops when `until()` is true."""
        t_end = time.monotonic() + wall_s
        while time.monotonic() < t_end:
            self.tick(int(tick_s * 1000000))
            if until is not None and until():
                return True
            time.sleep(0.005)
        return until() if until is not None else True

    def pending(self):
        return sum(vc.fw.journal.last_seq - vc.fw.journal.acked_seq for vc in self.concentrators)

    def close(self):
        for vc in self.concentrators:
            vc.fw.link.close()
        if self.own_workdir:
            shutil.rmtree(self.workdir, ignore_errors=True)
