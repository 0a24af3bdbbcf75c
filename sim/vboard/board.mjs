#!/usr/bin/env node
// Virtual Wattkeeper concentrator: a real MicroPython VM (npm package
// @micropython/micropython-webassembly-pyscript) that looks like an ESP32 on a
// USB-serial port. Serial line = this process's stdin/stdout; run it under
//   socat PTY,link=/tmp/vb0,raw,echo=0 EXEC:'node sim/vboard/board.mjs --flash DIR'
// See sim/vboard/README.md for options, the state files and the bus framing.
//
// This main thread owns stdin/stdout, the TCP sockets and the RS485 bus link;
// each boot of the board runs in a fresh worker thread (vm_worker.mjs).
import { Worker } from 'node:worker_threads';
import fs from 'node:fs';
import net from 'node:net';
import dns from 'node:dns';
import path from 'node:path';
import crypto from 'node:crypto';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { createRequire } from 'node:module';

const HERE = path.dirname(fileURLToPath(import.meta.url));
const PKG = '@micropython/micropython-webassembly-pyscript';

function usage(msg) {
  if (msg) process.stderr.write('board.mjs: ' + msg + '\n');
  process.stderr.write('usage: node board.mjs --flash DIR [--state DIR] [--bus HOST:PORT] [--name NAME]\n' +
    '       [--uid HEX12] [--rtc host|unset] [--heapsize BYTES] [--micropython PATH/micropython.mjs]\n');
  process.exit(2);
}
const opt = { rtc: 'host', heapsize: 1024 * 1024, pystack: 2048 };
const argv = process.argv.slice(2);
for (let i = 0; i < argv.length; i++) {
  const a = argv[i], v = () => { if (i + 1 >= argv.length) usage('missing value for ' + a); return argv[++i]; };
  if (a === '--flash') opt.flash = v();
  else if (a === '--state') opt.state = v();
  else if (a === '--bus') opt.bus = v();
  else if (a === '--name') opt.name = v();
  else if (a === '--uid') opt.uid = v();
  else if (a === '--rtc') opt.rtc = v();
  else if (a === '--heapsize') opt.heapsize = parseInt(v(), 10);
  else if (a === '--micropython') opt.mp = v();
  else if (a === '-h' || a === '--help') usage();
  else usage('unknown argument ' + a);
}
if (!opt.flash) usage('--flash DIR is required');
opt.flash = path.resolve(opt.flash);
opt.state = path.resolve(opt.state || opt.flash.replace(/\/+$/, '') + '.state');
fs.mkdirSync(opt.flash, { recursive: true });
fs.mkdirSync(opt.state, { recursive: true });
opt.name = opt.name || path.basename(opt.flash);
opt.uid = (opt.uid || crypto.createHash('sha256').update(opt.name).digest('hex').slice(0, 12)).toLowerCase();
if (!/^[0-9a-f]{12}$/.test(opt.uid)) usage('--uid must be 12 hex digits');
if (opt.bus && !/^[^:]+:\d+$/.test(opt.bus)) usage('--bus must be HOST:PORT');

function findMicroPython() {
  if (opt.mp) return pathToFileURL(path.resolve(opt.mp)).href;
  if (process.env.VBOARD_MICROPYTHON) return pathToFileURL(path.resolve(process.env.VBOARD_MICROPYTHON)).href;
  try { return pathToFileURL(createRequire(import.meta.url).resolve(PKG + '/micropython.mjs')).href; }
  catch { /* fall through */ }
  try { return pathToFileURL(createRequire(path.join(process.cwd(), 'x.js')).resolve(PKG + '/micropython.mjs')).href; }
  catch { usage(`cannot find ${PKG}: run "npm install" at the repository root or pass --micropython`); }
}
const MP_MODULE = findMicroPython();
let WASM_MODULE = null;     // compiled once, instantiated by every boot
try { WASM_MODULE = new WebAssembly.Module(fs.readFileSync(new URL('micropython.wasm', MP_MODULE))); }
catch (e) { process.stderr.write('vboard: wasm precompile failed, each boot compiles: ' + e + '\n'); }

// ------------------------------------------------------------------ serial line
const ringSab = new SharedArrayBuffer(16 + (1 << 20));
const ringI = new Int32Array(ringSab, 0, 4);
const ringB = new Uint8Array(ringSab, 16);
let ctlSab = null, ctlI = null, ctlB = null;
let lastWasCR = false;

function writeSerial(buf) {
  // MicroPython prints "\n"; a real board's USB-serial REPL sends "\r\n".
  let extra = 0;
  for (let i = 0; i < buf.length; i++) if (buf[i] === 10 && !(i ? buf[i - 1] === 13 : lastWasCR)) extra++;
  let out = buf;
  if (extra) {
    out = Buffer.alloc(buf.length + extra);
    let j = 0;
    for (let i = 0; i < buf.length; i++) {
      if (buf[i] === 10 && !(i ? buf[i - 1] === 13 : lastWasCR)) out[j++] = 13;
      out[j++] = buf[i];
    }
  }
  if (buf.length) lastWasCR = buf[buf.length - 1] === 13;
  process.stdout.write(out);
}
process.stdin.on('data', (d) => {
  const w = Atomics.load(ringI, 0), r = Atomics.load(ringI, 1);
  const space = ringB.length - (w - r);
  if (d.length > space) { process.stderr.write(`vboard: serial input overflow, ${d.length - space} bytes dropped\n`); d = d.subarray(0, space); }
  for (let i = 0; i < d.length; i++) ringB[(w + i) % ringB.length] = d[i];
  Atomics.store(ringI, 0, w + d.length);
  Atomics.notify(ringI, 0);
  if (ctlI) Atomics.notify(ctlI, 0);     // lets a blocked socket wait see Ctrl-C
});
process.stdin.on('end', () => shutdown(0));
process.on('SIGTERM', () => shutdown(0));
process.on('SIGINT', () => shutdown(0));
process.stdout.on('error', () => shutdown(0));

// ------------------------------------------------------------------ sockets and bus (served for the worker)
const EAGAIN = 11, ETIMEDOUT = 110, ECONNREFUSED = 111, ECONNRESET = 104, EHOSTUNREACH = 113, ENOTCONN = 128, EBADF = 9, ENODEV = 19;
const NODE_ERRNO = { ECONNREFUSED, ECONNRESET, ETIMEDOUT, EHOSTUNREACH, ENETUNREACH: EHOSTUNREACH, EPIPE: 32, ECONNABORTED: 103, EADDRNOTAVAIL: 125 };
const socks = new Map();
let nextSock = 1;
let pending = null;          // the one outstanding blocking request of the worker

function reply(req, result, data) {
  if (data && data.length) ctlB.set(data, 0);
  Atomics.store(ctlI, 1, result);
  Atomics.store(ctlI, 0, req);
  Atomics.notify(ctlI, 0);
}
function takeRx(s, max) {
  const out = Buffer.alloc(Math.min(max, s.rxLen));
  let n = 0;
  while (n < out.length) {
    const head = s.rx[0], k = Math.min(head.length, out.length - n);
    head.copy(out, n, 0, k); n += k;
    if (k === head.length) s.rx.shift(); else s.rx[0] = head.subarray(k);
  }
  s.rxLen -= n;
  return out;
}
function clearPending() {
  if (!pending) return;
  clearTimeout(pending.timer); clearTimeout(pending.gapTimer);
  pending = null;
}
function finishRecv() {
  const p = pending, s = socks.get(p.id);
  clearPending();
  if (s && s.rxLen) { const d = takeRx(s, p.max); reply(p.req, d.length, d); }
  else if (!s) reply(p.req, -EBADF);
  else if (s.err) reply(p.req, -s.err);
  else if (s.eof) reply(p.req, 0);
  else reply(p.req, -ETIMEDOUT);
}
function pokeRecv(s) {            // data, EOF or error arrived on s
  if (!pending || pending.id !== s.id) return;
  if (s.eof || s.err) return finishRecv();
  if (pending.gap < 0 || s.rxLen >= pending.max) return finishRecv();
  clearTimeout(pending.timer); pending.timer = null;        // first byte seen: now gap timing
  clearTimeout(pending.gapTimer);
  pending.gapTimer = setTimeout(finishRecv, Math.max(pending.gap, 0));
}
function newSock(sock, kind) {
  const s = { id: nextSock++, sock, kind, rx: [], rxLen: 0, eof: false, err: 0, fbuf: Buffer.alloc(0) };
  socks.set(s.id, s);
  sock.on('data', (d) => {
    if (s.kind === 'bus') {         // frames: type(1) len(2, big endian) payload
      s.fbuf = Buffer.concat([s.fbuf, d]);
      while (s.fbuf.length >= 3) {
        const n = s.fbuf.readUInt16BE(1);
        if (s.fbuf.length < 3 + n) break;
        if (s.fbuf[0] === 0x52) { s.rx.push(Buffer.from(s.fbuf.subarray(3, 3 + n))); s.rxLen += n; }
        s.fbuf = s.fbuf.subarray(3 + n);
      }
    } else { s.rx.push(d); s.rxLen += d.length; }
    pokeRecv(s);
  });
  sock.on('end', () => { s.eof = true; pokeRecv(s); });
  sock.on('error', (e) => { s.err = NODE_ERRNO[e.code] || ECONNRESET; pokeRecv(s); });
  sock.on('close', () => { if (!s.err) s.eof = true; pokeRecv(s); });
  return s;
}
function busFrame(type, payload) {
  const b = Buffer.alloc(3 + payload.length);
  b[0] = type.charCodeAt(0); b.writeUInt16BE(payload.length, 1); payload.copy(b, 3);
  return b;
}
function doConnect(m, hostname, port, kind, onOk) {
  let done = false;
  const sock = net.connect({ host: hostname, port });
  sock.setNoDelay(true);
  const fail = (e) => { if (done) return; done = true; clearTimeout(t); sock.destroy(); pending = null; reply(m.req, -e); };
  const t = m.timeout > 0 ? setTimeout(() => fail(ETIMEDOUT), m.timeout) : null;
  pending = { req: m.req, id: -1, timer: t, cancel: () => { done = true; clearTimeout(t); sock.destroy(); } };
  sock.once('error', (e) => fail(NODE_ERRNO[e.code] || ECONNREFUSED));
  sock.once('connect', () => {
    if (done) return; done = true; clearTimeout(t); pending = null;
    const s = newSock(sock, kind);
    if (onOk) onOk(s);
    reply(m.req, s.id);
  });
}
function handle(m) {
  switch (m.type) {
    case 'out': return writeSerial(m.data);
    case 'rtc': rtcOffsetMs = m.offset; return;
    case 'reboot': return onReboot(m);
    case 'fatal': return shutdown(1);
    case 'cancel':
      if (pending && pending.req === m.req) { if (pending.cancel) pending.cancel(); clearPending(); }
      return;
    case 'resolve':
      return dns.lookup(m.host, { family: 4 }, (e, addr) => {
        if (e) return reply(m.req, -202);
        const b = Buffer.from(addr, 'latin1'); reply(m.req, b.length, b);
      });
    case 'connect': return doConnect(m, m.host, m.port, 'tcp');
    case 'bus_open': {
      if (!opt.bus) return reply(m.req, -ENODEV);
      const [h, p] = opt.bus.split(':');
      return doConnect({ req: m.req, timeout: 3000 }, h, parseInt(p, 10), 'bus', (s) => {
        s.sock.write(busFrame('H', Buffer.from(opt.name)));
        s.sock.write(busFrame('C', Buffer.from(m.cfg)));
      });
    }
    case 'bus_config': {
      const s = socks.get(m.id); if (!s) return reply(m.req, -EBADF);
      s.sock.write(busFrame('C', Buffer.from(m.cfg))); return reply(m.req, 0);
    }
    case 'send': {
      const s = socks.get(m.id);
      if (!s) return reply(m.req, -EBADF);
      if (s.err) return reply(m.req, -s.err);
      if (s.sock.destroyed || s.sock.writableEnded) return reply(m.req, -ENOTCONN);
      const data = Buffer.from(m.data.buffer, m.data.byteOffset, m.data.length);
      s.sock.write(s.kind === 'bus' ? busFrame('W', data) : data);
      return reply(m.req, m.data.length);
    }
    case 'recv': {
      const s = socks.get(m.id);
      if (!s) return reply(m.req, -EBADF);
      pending = { req: m.req, id: m.id, max: m.max, gap: m.gap, timer: null, gapTimer: null };
      if (s.rxLen && (m.gap < 0 || s.rxLen >= m.max)) return finishRecv();
      if (s.rxLen) { pending.gapTimer = setTimeout(finishRecv, Math.max(m.gap, 0)); return; }
      if (s.err || s.eof) return finishRecv();
      if (m.timeout === 0) { pending = null; return reply(m.req, -EAGAIN); }
      if (m.timeout > 0) pending.timer = setTimeout(finishRecv, m.timeout);
      return;
    }
    case 'avail': { const s = socks.get(m.id); return reply(m.req, s ? (s.rxLen || ((s.eof || s.err) ? -1 : 0)) : -EBADF); }
    case 'close': {
      const s = socks.get(m.id);
      if (s) { s.sock.destroy(); socks.delete(m.id); }
      return reply(m.req, 0);
    }
  }
}

// ------------------------------------------------------------------ boots
let worker = null, boots = 0, resetCause = 1 /* PWRON_RESET */, shuttingDown = false;
let rtcOffsetMs = opt.rtc === 'unset' ? 946684800000 - Date.now() : 0;
let pinState = {};
function writeBoardJson(kind) {
  const p = path.join(opt.state, 'board.json');
  fs.writeFileSync(p + '.tmp', JSON.stringify({ pid: process.pid, name: opt.name, uid: opt.uid, boots, boot_kind: kind, reset_cause: resetCause, flash: opt.flash, bus: opt.bus || null }));
  fs.renameSync(p + '.tmp', p);
}
let standby = null;
function spawnWorker() {
  const sab = new SharedArrayBuffer(64 + 65536);
  const w = new Worker(path.join(HERE, 'vm_worker.mjs'), {
    workerData: {
      ringSab, ctlSab: sab, wasmModule: WASM_MODULE, mpModule: MP_MODULE,
      flashDir: opt.flash, stateDir: opt.state, name: opt.name, uid: opt.uid,
      heapsize: opt.heapsize, pystack: opt.pystack,
    },
  });
  w.ctlSab = sab;
  w.on('error', (e) => { process.stderr.write('vboard: worker error: ' + (e && e.stack || e) + '\n'); });
  w.on('message', (m) => { if (w === worker) handle(m); else if (m.type === 'fatal') shutdown(1); });
  return w;
}
function startWorker(kind, raw) {
  boots++;
  if (kind !== 'soft') { pinState = {}; fs.writeFileSync(path.join(opt.state, 'pins.json'), '{}'); }
  writeBoardJson(kind);
  worker = standby || spawnWorker();
  standby = null;
  ctlSab = worker.ctlSab;
  ctlI = new Int32Array(ctlSab, 0, 16);
  ctlB = new Uint8Array(ctlSab, 64);
  worker.postMessage({ raw: !!raw, bootKind: kind, resetCause, rtcOffsetMs, pins: pinState });
  // the next boot's VM starts while this one runs
  setTimeout(() => { if (!standby && !shuttingDown) standby = spawnWorker(); }, 300);
}
function closeAllSockets() {
  for (const s of socks.values()) s.sock.destroy();
  socks.clear();
  if (pending && pending.cancel) pending.cancel();
  clearPending();
}
function onReboot(m) {
  worker = null;
  closeAllSockets();                       // the TCP stack does not survive a reset
  if (m.kind === 'hard') resetCause = 5;   // machine.SOFT_RESET, what an ESP32 reports after machine.reset()
  else if (m.kind === 'wdt') resetCause = 3;
  if (m.kind === 'soft') pinState = m.pins || {};
  setImmediate(() => startWorker(m.kind, m.kind === 'soft' && m.raw));
}
async function shutdown(code) {
  if (shuttingDown) return; shuttingDown = true;
  closeAllSockets();
  if (worker) {
    // ask the worker to write its flash to the host folder (it answers from any
    // wait: REPL, sleep, socket, between steps), then stop it
    Atomics.store(ringI, 2, 1); Atomics.notify(ringI, 0); Atomics.notify(ctlI, 0);
    const end = Date.now() + 2000;
    while (!Atomics.load(ringI, 3) && Date.now() < end) await new Promise((r) => setTimeout(r, 5));
    await worker.terminate().catch(() => {});
  }
  if (standby) await standby.terminate().catch(() => {});
  process.exit(code);
}

startWorker('power', false);
