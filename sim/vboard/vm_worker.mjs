// One boot of the virtual board: a fresh MicroPython VM in a worker thread.
// A soft reboot or a reset ends this worker; board.mjs starts a new one, so every
// boot gets a pristine VM (the npm package keeps its state in globalThis).
//
// Shared with board.mjs (main thread):
//   ring  : stdin bytes. Int32 [0]=write count, [1]=read count; bytes from offset 16.
//   ctl   : RPC replies. Int32 [0]=id of the last completed request, [1]=result;
//           reply bytes from offset 64.
import { workerData, parentPort } from 'node:worker_threads';
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const HERE = path.dirname(fileURLToPath(import.meta.url));
const W = workerData;
const ringI = new Int32Array(W.ringSab, 0, 4);
const ringB = new Uint8Array(W.ringSab, 16);
const RING = ringB.length;
const ctlI = new Int32Array(W.ctlSab, 0, 16);
const ctlB = new Uint8Array(W.ctlSab, 64);

const FLASH_BLOCKS = 384, BLOCK = 4096;       // 1.5 MiB, 4 KiB blocks
const EPOCH2000 = 946684800;
const RAW_PASTE_WINDOW = 512;

// ---------------------------------------------------------------- output
let outBuf = Buffer.alloc(8192), outLen = 0, outT = 0, suppress = null, mute = false;
function outByte(c) {
  if (mute) return;
  if (suppress !== null) {               // drop an expected prefix (raw-paste "OK")
    if (suppress.length && c === suppress[0]) { suppress = suppress.slice(1); if (!suppress.length) suppress = null; return; }
    suppress = null;
  }
  if (outLen === outBuf.length) flushOut();
  outBuf[outLen++] = c;
  if (outLen >= 4096) flushOut();
  else if ((outLen & 63) === 0) {
    const t = performance.now();
    // output also comes from the REPL echoing input: only look for Ctrl-C while the
    // REPL is executing code (it then sets the interrupt char)
    if (t - outT > 20) { flushOut(); if (M && M._mp_hal_get_interrupt_char() === 3) pollIntr(); }
  }
}
function outStr(s) { for (const c of Buffer.from(s, 'latin1')) outByte(c); }
function flushOut() {
  outT = performance.now();
  if (!outLen) return;
  parentPort.postMessage({ type: 'out', data: Buffer.from(outBuf.subarray(0, outLen)) });
  outLen = 0;
}

// ---------------------------------------------------------------- stdin ring
function avail() { return Atomics.load(ringI, 0) - Atomics.load(ringI, 1); }
function readByte(timeoutMs) {            // -1 on timeout
  const end = timeoutMs === undefined ? Infinity : performance.now() + timeoutMs;
  for (;;) {
    const w = Atomics.load(ringI, 0), r = Atomics.load(ringI, 1);
    if (w !== r) { const c = ringB[r % RING]; Atomics.store(ringI, 1, r + 1); return c; }
    const left = end - performance.now();
    if (left <= 0) return -1;
    flushOut();
    Atomics.wait(ringI, 0, w, Math.min(left, wdtTimeout ? 20 : 1000));
    checkWdt(); checkHostReq();
  }
}
// The host is shutting down (power off): write the flash, then tell it we are done.
function checkHostReq() {
  if (!Atomics.load(ringI, 2) || Atomics.load(ringI, 3)) return;
  try { syncFlash(); } catch (e) { process.stderr.write('vboard: flash sync failed: ' + e + '\n'); }
  flushOut();
  Atomics.store(ringI, 3, 1); Atomics.notify(ringI, 3);
}
// Ctrl-C while Python runs: take everything up to the ^C, schedule KeyboardInterrupt.
function takeCtrlC() {
  const w = Atomics.load(ringI, 0); let r = Atomics.load(ringI, 1);
  for (let i = r; i < w; i++) if (ringB[i % RING] === 3) { Atomics.store(ringI, 1, i + 1); return true; }
  return false;
}
function peekCtrlC() {
  const w = Atomics.load(ringI, 0);
  for (let i = Atomics.load(ringI, 1); i < w; i++) if (ringB[i % RING] === 3) return true;
  return false;
}
let mp = null, M = null, memory = null;
function pollIntr() {
  if (!M || inIdle) return false;
  if (avail() > 0 && takeCtrlC()) { M._mp_sched_keyboard_interrupt(); return true; }
  return false;
}

// ---------------------------------------------------------------- flash (MEMFS /flash <-> host folder)
const FLASH = W.flashDir;
let flashCache = new Map();               // rel path -> Buffer (files) or null (dirs)
function restoreFlash(FS) {
  const walk = (rel) => {
    for (const ent of fs.readdirSync(path.join(FLASH, rel), { withFileTypes: true })) {
      if (ent.name.startsWith('.vb-tmp')) continue;
      const r = rel ? rel + '/' + ent.name : ent.name;
      if (ent.isDirectory()) { FS.mkdir('/flash/' + r); flashCache.set(r, null); walk(r); }
      else if (ent.isFile()) { const b = fs.readFileSync(path.join(FLASH, r)); FS.writeFile('/flash/' + r, b); flashCache.set(r, b); }
    }
  };
  walk('');
}
function memfsTree(FS) {
  const out = new Map();
  const walk = (rel) => {
    for (const name of FS.readdir('/flash' + (rel ? '/' + rel : ''))) {
      if (name === '.' || name === '..') continue;
      const r = rel ? rel + '/' + name : name, p = '/flash/' + r;
      const st = FS.stat(p);
      if (FS.isDir(st.mode)) { out.set(r, null); walk(r); } else out.set(r, FS.readFile(p));
    }
  };
  walk('');
  return out;
}
let lastSync = 0;
function syncFlash() {
  if (!mp) return;
  lastSync = performance.now();
  const now = memfsTree(mp.FS);
  // removals first (deepest paths first)
  const gone = [...flashCache.keys()].filter((k) => !now.has(k) || (now.get(k) === null) !== (flashCache.get(k) === null));
  gone.sort((a, b) => b.length - a.length);
  for (const k of gone) { try { fs.rmSync(path.join(FLASH, k), { recursive: true, force: true }); } catch {} flashCache.delete(k); }
  for (const [k, v] of [...now.entries()].sort((a, b) => a[0].length - b[0].length)) {
    const old = flashCache.get(k);
    if (v === null) { if (old !== null) fs.mkdirSync(path.join(FLASH, k), { recursive: true }); }
    else if (!(old instanceof Uint8Array) || Buffer.compare(old, v) !== 0) {
      const tmp = path.join(FLASH, '.vb-tmp-' + process.pid);
      fs.writeFileSync(tmp, v); fs.renameSync(tmp, path.join(FLASH, k));
    }
    flashCache.set(k, v === null ? null : Buffer.from(v));
  }
}
function maybeSync() { if (performance.now() - lastSync > 250) syncFlash(); }
function usedBlocks() {
  let n = 2;                                // superblock pair
  for (const v of memfsTree(mp.FS).values()) n += v === null ? 2 : Math.max(1, Math.ceil(v.length / BLOCK));
  return Math.min(n, FLASH_BLOCKS);
}

// ---------------------------------------------------------------- state files (pins, inputs)
const STATE = W.stateDir;
const pinOut = {};
function writeJson(name, obj) {
  const p = path.join(STATE, name), tmp = p + '.tmp' + process.pid;
  fs.writeFileSync(tmp, JSON.stringify(obj)); fs.renameSync(tmp, p);
}
let inputsCache = {}, inputsMtime = -1;
function inputs() {
  try {
    const st = fs.statSync(path.join(STATE, 'inputs.json'));
    if (st.mtimeMs !== inputsMtime) { inputsMtime = st.mtimeMs; inputsCache = JSON.parse(fs.readFileSync(path.join(STATE, 'inputs.json'), 'utf8')); }
  } catch { inputsCache = {}; inputsMtime = -1; }
  return inputsCache;
}

// ---------------------------------------------------------------- watchdog, resets
let wdtTimeout = 0, wdtDeadline = 0;
function checkWdt() {
  if (wdtTimeout && performance.now() > wdtDeadline) reboot('wdt');
}
function reboot(kind) {   // kind: soft | hard | wdt
  try { syncFlash(); } catch (e) { process.stderr.write('vboard: flash sync failed: ' + e + '\n'); }
  if (kind === 'wdt') outStr('\nrst:0x8 (TG1WDT_SYS_RESET) virtual watchdog expired\n');
  flushOut();
  parentPort.postMessage({ type: 'reboot', kind, raw: rawMode, pins: pinOut });
  process.exit(0);
}

// ---------------------------------------------------------------- RPC to the main thread (sockets, bus)
let reqSeq = 0;
function rpc(msg, transfer) {
  flushOut();
  const id = ++reqSeq; msg.req = id;
  parentPort.postMessage(msg, transfer || []);
  for (;;) {
    const done = Atomics.load(ctlI, 0);
    if (done === id) return Atomics.load(ctlI, 1);
    Atomics.wait(ctlI, 0, done, 50);
    if (Atomics.load(ctlI, 0) !== id && pollIntr()) { parentPort.postMessage({ type: 'cancel', req: id }); return -4; }
    checkWdt(); checkHostReq();
  }
}
function heap() { return new Uint8Array(memory.buffer); }

// ---------------------------------------------------------------- the JS module seen by Python as _vbhost
let runner = null, runnerPeriod = 0, runnerIdle = false, runnerStop = null, inIdle = false;
const host = {
  board_name: () => W.name,
  uid: () => W.uid,
  boot_kind: () => W.bootKind,
  reset_cause: () => W.resetCause,
  wall_s: () => Math.floor((Date.now() + W.rtcOffsetMs) / 1000) - EPOCH2000,
  wall_ms_frac: () => Math.floor(Date.now() + W.rtcOffsetMs) % 1000,
  set_rtc: (s2000, ms) => {
    W.rtcOffsetMs = (s2000 + EPOCH2000) * 1000 + (ms || 0) - Date.now();
    parentPort.postMessage({ type: 'rtc', offset: W.rtcOffsetMs });
  },
  sleep_ms: (ms) => {
    const end = performance.now() + ms;
    flushOut(); maybeSync();
    for (;;) {
      const left = end - performance.now();
      if (left <= 0) break;
      const w = Atomics.load(ringI, 0);
      if (avail() > 0 && pollIntr()) return 1;
      Atomics.wait(ringI, 0, w, Math.min(left, 100));
      if (pollIntr()) return 1;
      checkWdt(); checkHostReq();
    }
    checkWdt();
    return 0;
  },
  poll: () => { checkWdt(); return pollIntr() ? 1 : 0; },
  pin_write: (id, v) => {
    id = String(id); v = v ? 1 : 0;
    if (pinOut[id] !== v) { pinOut[id] = v; writeJson('pins.json', pinOut); }
    pollIntr();
  },
  pin_out: (id) => { const v = pinOut[String(id)]; return v === undefined ? -1 : v; },
  pin_in: (id, dflt) => { const v = (inputs().pins || {})[String(id)]; return v === undefined ? dflt : (v ? 1 : 0); },
  input: (key, dflt) => { const v = inputs()[String(key)]; return v === undefined ? dflt : (typeof v === 'boolean' ? (v ? 1 : 0) : v); },
  wdt_start: (ms) => { wdtTimeout = ms; wdtDeadline = performance.now() + ms; },
  wdt_feed: () => { if (wdtTimeout) wdtDeadline = performance.now() + wdtTimeout; pollIntr(); },
  reset: () => reboot('hard'),
  soft_reset: () => reboot('soft'),
  flash_sync: () => syncFlash(),
  used_blocks: () => usedBlocks(),
  set_runner: (fn, period, idle, onStop) => { runner = fn; runnerPeriod = period || 0; runnerIdle = !!idle; runnerStop = onStop || null; },
  // sockets: results < 0 are -errno (MicroPython numbering)
  resolve: (hostname) => {
    const r = rpc({ type: 'resolve', host: String(hostname) });
    return r < 0 ? r : Buffer.from(ctlB.subarray(0, r)).toString('latin1');
  },
  connect: (ip, port, timeoutMs, kind) => rpc({ type: 'connect', host: String(ip), port, timeout: timeoutMs, kind: kind || 'tcp' }),
  send: (id, addr, n) => {
    const data = heap().slice(addr, addr + n);
    return rpc({ type: 'send', id, data }, [data.buffer]);
  },
  recv: (id, addr, n, timeoutMs, gapMs) => {
    const r = rpc({ type: 'recv', id, max: Math.min(n, ctlB.length), timeout: timeoutMs, gap: gapMs === undefined ? -1 : gapMs });
    if (r > 0) heap().set(ctlB.subarray(0, r), addr);
    return r;
  },
  avail: (id) => rpc({ type: 'avail', id }),
  close: (id) => rpc({ type: 'close', id }),
  bus_open: (cfg) => rpc({ type: 'bus_open', cfg: String(cfg) }),
  bus_config: (id, cfg) => rpc({ type: 'bus_config', id, cfg: String(cfg) }),
};

// ---------------------------------------------------------------- boot
let rawMode = !!W.raw;
async function boot() {
  const mpPath = W.mpModule;
  const mod = await import(mpPath);
  // capture the wasm memory (the package does not export it)
  const origInst = WebAssembly.instantiate;
  WebAssembly.instantiate = async (...a) => {
    // board.mjs compiled the wasm once; every boot only instantiates it
    const res = W.wasmModule ? { instance: await origInst.call(WebAssembly, W.wasmModule, a[1]), module: W.wasmModule }
      : await origInst.apply(WebAssembly, a);
    const inst = res.instance || res;
    for (const v of Object.values(inst.exports)) if (v instanceof WebAssembly.Memory) memory = v;
    return res;
  };
  mp = await mod.loadMicroPython({ stdout: (b) => { for (const c of b) outByte(c); }, linebuffer: false, heapsize: W.heapsize, pystack: W.pystack });
  WebAssembly.instantiate = origInst;
  M = mp._module;
  const FS = mp.FS;
  FS.mkdir('/flash');
  FS.mkdir('/vboard');
  for (const f of fs.readdirSync(path.join(HERE, 'py'))) if (f.endsWith('.py')) FS.writeFile('/vboard/' + f, fs.readFileSync(path.join(HERE, 'py', f)));
  mp.registerJsModule('_vbhost', host);
  mp.runPython('import sys\nsys.path.insert(0, "/vboard")\nimport _vbinit\n_vbinit.setup()\ndel _vbinit\n');
  // Standby: the VM is ready; wait for the board to (re)boot into it. This hides the
  // VM start-up from soft reboots (mpremote soft-resets the board on every connect).
  const go = await new Promise((r) => parentPort.once('message', r));
  Object.assign(W, go);
  Object.assign(pinOut, W.pins || {});
  rawMode = !!W.raw;
  restoreFlash(FS);
  if (W.bootKind === 'soft') outStr('MPY: soft reboot\n');
  runFile('boot.py');
  if (!rawMode) { runFile('main.py'); runSteps(); }
  syncFlash();
  // REPL
  if (rawMode) { mute = true; mp.replInit(); mute = false; mp.replProcessChar(1); }
  else mp.replInit();
  replLoop();
}

function printPyError(e) {
  if (e && e.name === 'PythonError') { if (e.type !== 'SystemExit') outStr(e.message.replace(/\n?$/, '\n')); }
  else outStr('vboard internal error: ' + (e && e.stack || e) + '\n');
}
function runFile(name) {
  if (!mp.FS.analyzePath('/flash/' + name).exists) return;
  try { mp.runPython(`import _vbrun\n_vbrun.run(${JSON.stringify(name)})`); }
  catch (e) { printPyError(e); }
}

// Host-driven main loop: main.py called vboard.run_forever(step, period_ms) and returned.
// JS calls step() repeatedly, so control (and garbage collection) returns to JS between steps.
function runSteps() {
  let fn, stopped = false;
  while ((fn = runner)) {
    checkWdt(); checkHostReq();
    if (avail() > 0 && takeCtrlC()) {
      outStr('Traceback (most recent call last):\n  File "main.py", in <module>\nKeyboardInterrupt: \n');
      runner = null; stopped = true; break;
    }
    let ret;
    try { ret = fn(); } catch (e) { printPyError(e); runner = null; stopped = true; break; }
    maybeSync();
    // idle mode: the step's return value (ms until more work) is the pause, at most period_ms
    let wait = runnerPeriod;
    if (runnerIdle) { wait = (typeof ret === 'number' && ret > 0) ? ret : 0; if (runnerPeriod > 0 && wait > runnerPeriod) wait = runnerPeriod; }
    if (wait > 0) {
      const end = performance.now() + wait;
      flushOut();
      for (;;) {
        const left = end - performance.now(); if (left <= 0) break;
        const w = Atomics.load(ringI, 0);
        if (w !== Atomics.load(ringI, 1) && peekCtrlC()) break;   // only Ctrl-C cuts the pause short
        Atomics.wait(ringI, 0, w, Math.min(left, 100));
        checkWdt(); checkHostReq();
      }
    } else if ((++stepCount & 63) === 0) flushOut();
  }
  // tell the firmware its loop was stopped (Ctrl-C or an error): vboard.run_forever(on_stop=)
  const cb = runnerStop; runnerStop = null;
  if (stopped && cb) { try { cb(); } catch (e) { printPyError(e); } }
  return stopped;
}
let stepCount = 0;

function feed(c) {
  const r = mp.replProcessChar(c);
  if (c === 1 && !rawMode) rawMode = true;
  else if (c === 2 && rawMode) rawMode = false;
  if (r) reboot('soft');            // Ctrl-D on an empty line: soft reboot
  if (runner) {                     // a REPL command called vboard.run_forever(): resume the loop
    inIdle = false;
    if (runSteps() && !rawMode) outStr('>>> ');
  }
}

function rawPaste() {
  const a = readByte(), b = readByte();
  if (a !== 0x41 || b !== 0x01) { feed(a); feed(b); return; }
  outStr('R\x01' + String.fromCharCode(RAW_PASTE_WINDOW & 255, RAW_PASTE_WINDOW >> 8));
  const code = [];
  let got = 0;
  for (;;) {
    const c = readByte();
    if (c === 4) break;
    if (c === 3) { outStr('\x04'); flushOut(); return; }   // abort
    code.push(c);
    if (++got === RAW_PASTE_WINDOW) { got = 0; outStr('\x01'); flushOut(); }
  }
  outStr('\x04'); flushOut();
  inIdle = true;
  for (const c of code) mp.replProcessChar(c);
  inIdle = false;
  suppress = [0x4f, 0x4b];          // the VM prints "OK" when the code is complete
  feed(4);
  suppress = null;
}

let dirty = true;
function replLoop() {
  for (;;) {
    inIdle = true;
    let c = readByte(0);
    if (c < 0 && dirty) {
      // idle: write the flash back to the host folder once input has paused
      flushOut();
      c = readByte(40);
      if (c < 0) { syncFlash(); dirty = false; }
    }
    if (c < 0) c = readByte();
    inIdle = false;
    dirty = true;
    if (rawMode && c === 5) { rawPaste(); continue; }
    feed(c);
  }
}

boot().catch((e) => { process.stderr.write('vboard: boot failed: ' + (e && e.stack || e) + '\n'); flushOut(); parentPort.postMessage({ type: 'fatal' }); });
