"""Interoperability with pymodbus, a Modbus implementation nobody here wrote.

1. The firmware's Modbus master (concentrator.modbus via sim.serial_uart)
   reads a pymodbus RTU serial server across a socat pseudo-terminal pair.
2. pymodbus's RTU client reads our simulated meters exposed on a pty
   (sim.pty_meter).
"""
import os
import shutil
import struct
import subprocess
import sys
import textwrap
import time

import pytest

from tests.support import ROOT

from concentrator import modbus  # noqa: E402
from concentrator.meters import MeterBus  # noqa: E402
from concentrator.profiles import PROFILES  # noqa: E402
from sim.load import ConstantLoad  # noqa: E402
from sim.modbus_meter import PrepaidIntMeter, SDM120Meter  # noqa: E402
from sim.pty_meter import PtyMeter  # noqa: E402
from sim.serial_uart import SerialHal, SerialUart  # noqa: E402

SERVER = textwrap.dedent('''
    import struct, sys, logging
    logging.disable(logging.WARNING)
    from pymodbus import FramerType
    from pymodbus.server import StartSerialServer
    from pymodbus.simulator import DataType, SimData, SimDevice

    def f32(x):
        return list(struct.unpack(">HH", struct.pack(">f", x)))

    ir = [0] * 0x158
    for a, x in ((0x00, 230.1), (0x06, 4.5), (0x0C, 1035.0), (0x46, 50.0),
                 (0x48, 12345.67), (0x4A, 0.5), (0x156, 12346.17)):
        ir[a:a + 2] = f32(x)
    hr = [0] * 0x40
    hr[0x00] = 2301                                # 230.1 V
    hr[0x01:0x03] = [0, 4500]                      # 4.5 A
    hr[0x03:0x05] = list(struct.unpack(">HH", struct.pack(">i", -10)))
    hr[0x0A:0x0C] = list(struct.unpack(">HH", struct.pack(">I", 9876543)))
    for k in range(4):
        hr[0x0C + 2 * k:0x0E + 2 * k] = [0, 1000 * (k + 1)]
    hr[0x14] = 1
    hr[0x20] = 1

    def regs(values):
        return [SimData(0, values=values, datatype=DataType.REGISTERS)]

    def bits():
        return [SimData(0, count=16, values=False, datatype=DataType.BITS)]

    sdm = SimDevice(1, simdata=(bits(), bits(), regs([0] * 4), regs(ir)))
    pre = SimDevice(2, simdata=(bits(), bits(), regs(hr), regs([0] * 4)))
    StartSerialServer(context=[sdm, pre], port=sys.argv[1], framer=FramerType.RTU,
                      baudrate=9600, parity="N", stopbits=1)
''')


@pytest.fixture
def pty_pair(tmp_path):
    socat = shutil.which("socat")
    assert socat, "socat is needed for the pty pair"
    a, b = str(tmp_path / "server"), str(tmp_path / "master")
    p = subprocess.Popen([socat, "pty,raw,echo=0,link=" + a, "pty,raw,echo=0,link=" + b],
                         stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    t = time.monotonic()
    while not (os.path.exists(a) and os.path.exists(b)):
        assert time.monotonic() - t < 10 and p.poll() is None, "socat did not start"
        time.sleep(0.05)
    yield a, b
    p.terminate()
    p.wait(5)


@pytest.fixture
def pymodbus_server(pty_pair):
    a, b = pty_pair
    srv = subprocess.Popen([sys.executable, "-c", SERVER, a],
                           stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    uart = SerialUart(b, 9600, min_gap_ms=20)
    hal = SerialHal(uart)
    yield srv, uart, hal
    uart.close()
    srv.terminate()
    try:
        srv.wait(5)
    except subprocess.TimeoutExpired:
        srv.kill()
        srv.wait(5)


def _meters():
    return [{"id": "S1", "addr": 1, "model": "sdm120"},
            {"id": "P2", "addr": 2, "model": "prepaid-int", "parity": "N"}]


def _wait_until_up(mb, srv):
    t = time.monotonic()
    while time.monotonic() - t < 20:
        assert srv.poll() is None, srv.stdout.read().decode(errors="replace")
        if mb.poll(0) is not None:
            return
        mb.stats(0)["offline"] = False       # keep knocking while it boots
        time.sleep(0.2)
    raise AssertionError("pymodbus server never answered")


def test_firmware_master_reads_pymodbus_server(pymodbus_server):
    srv, uart, hal = pymodbus_server
    meters = _meters()
    mb = MeterBus(hal, meters)
    mb.driver("modbus").timeout_ms = 1000    # a Python server on a pty
    _wait_until_up(mb, srv)
    r = mb.reading(0)
    assert r.ok and r.energy_wh == 12345670
    assert (r.voltage_dv, r.current_ma, r.power_w) == (2301, 4500, 1035)

    r = mb.poll(1)
    assert r is not None and r.ok
    assert r.energy_wh == 98765430                 # 98765.43 kWh -> Wh
    assert (r.voltage_dv, r.current_ma, r.power_w) == (2301, 4500, -10)
    assert r.bands == [10000, 20000, 30000, 40000]
    assert r.relay_closed is True

    d = mb.driver("modbus")
    p = PROFILES["prepaid-int"]
    # FC 06 and FC 16 writes, read back raw through FC 03
    assert d.write(meters[1], p, 6, 0x30, 0x1234)
    assert d.write(meters[1], p, 16, 0x31, [7, 8, 9])
    assert d.read_regs(meters[1], p, 3, 0x30, 4) == [0x1234, 7, 8, 9]
    # pymodbus's status register does not follow the control register: the
    # read-back must catch that
    assert d.set_relay(meters[1], p, False) is False
    assert d.read_regs(meters[1], p, 3, 0x20, 1) == [0]

    # an address the server does not have: an exception reply, counted
    before = mb.stats(0)["exceptions"]
    assert d.read_regs(meters[0], PROFILES["sdm120"], 4, 0x200, 2) is None
    assert mb.stats(0)["exceptions"] == before + 1
    assert mb.stats(0)["last_exc"] == 2
    for k in ("crc", "wrong_address", "wrong_function", "short"):
        assert mb.stats(0)[k] == 0 and mb.stats(1)[k] == 0, k


def test_pymodbus_client_reads_simulated_meters():
    from pymodbus.client import ModbusSerialClient
    sdm = SDM120Meter(1, load=ConstantLoad(1035), energy_wh=12345670, voltage_dv=2301)
    pre = PrepaidIntMeter(2, load=ConstantLoad(460), energy_wh=98765, voltage_dv=2301)
    with PtyMeter(sdm, pre) as pty:
        client = ModbusSerialClient(port=pty.path, baudrate=9600, timeout=1, retries=1)
        try:
            assert client.connect()
            rr = client.read_input_registers(0x48, count=2, device_id=1)
            assert not rr.isError()
            kwh = client.convert_from_registers(rr.registers, data_type=client.DATATYPE.FLOAT32)
            assert kwh == struct.unpack(">f", struct.pack(">f", 12345.67))[0]
            rr = client.read_input_registers(0x00, count=0x0E, device_id=1)
            v = client.convert_from_registers(rr.registers[0:2], data_type=client.DATATYPE.FLOAT32)
            p = client.convert_from_registers(rr.registers[12:14], data_type=client.DATATYPE.FLOAT32)
            assert abs(v - 230.1) < 1e-4 and p == 1035.0

            rr = client.read_holding_registers(0x00, count=0x15, device_id=2)
            assert not rr.isError()
            regs = rr.registers
            assert regs[0] == 2301 and (regs[3] << 16 | regs[4]) == 460
            assert (regs[0x0A] << 16 | regs[0x0B]) == 9876      # 0.01 kWh
            assert regs[0x14] == 1

            rr = client.write_register(0x20, 0, device_id=2)
            assert not rr.isError() and pre.relay_closed is False
            assert client.read_holding_registers(0x14, count=1, device_id=2).registers == [0]
            assert not client.write_coil(0, True, device_id=2).isError()
            assert pre.relay_closed is True
            assert not client.write_registers(0x30, [5, 6, 7], device_id=2).isError()
            assert pre.scratch[:3] == [5, 6, 7]

            rr = client.read_holding_registers(0x3F, count=2, device_id=2)
            assert rr.isError() and rr.exception_code == 2
            rr = client.write_register(0x20, 9, device_id=2)
            assert rr.isError() and rr.exception_code == 3
            rr = client.read_input_registers(0x00, count=2, device_id=2)
            assert rr.isError() and rr.exception_code == 1
        finally:
            client.close()
    assert pty.frames >= 10


def test_firmware_master_reads_pty_meter_with_real_serial():
    # the same sim meter through a real tty: firmware master + pyserial
    pre = PrepaidIntMeter(2, load=ConstantLoad(460), energy_wh=98765)
    with PtyMeter(pre) as pty:
        uart = SerialUart(pty.path, 9600, min_gap_ms=20)
        try:
            hal = SerialHal(uart)
            mb = MeterBus(hal, [{"id": "P2", "addr": 2, "model": "prepaid-int"}])
            r = mb.poll(0)
            assert r is not None and r.energy_wh == 98760 and r.power_w == 460
            assert mb.set_relay(0, False) is True and pre.relay_closed is False
            assert mb.poll(0).relay_closed is False
            assert mb.set_relay(0, True) is True and pre.relay_closed is True
        finally:
            uart.close()
