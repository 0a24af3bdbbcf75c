#!/usr/bin/env node
// Run a Python script in the real MicroPython VM (WebAssembly port from npm).
//
//   node sim/mpvm/run.mjs [options] SCRIPT.py | -
//
//   --firmware            copy <repo>/firmware into the VM's / (like the board's flash)
//   --tree HOSTDIR[=VMDIR]  copy a host directory tree into MEMFS (default VMDIR "/")
//   --file HOSTFILE=VMPATH  copy one host file into MEMFS
//   --cwd VMDIR           chdir before running (default "/")
//   --heapsize BYTES      first GC heap (default 4 MiB; the build grows it on demand)
//   --pystack WORDS       Python stack (default 8192)
//   --async               run with runPythonAsync (allows top-level await)
//
// Prints the script's stdout on stdout and its stderr on stderr.  Exit code 0
// on success (or SystemExit with code 0/None), SystemExit's integer code, or
// 1 after an uncaught Python exception (its traceback goes to stderr).
import { loadMicroPython } from "@micropython/micropython-webassembly-pyscript";
import fs from "node:fs";
import path from "node:path";
import { fileURLToPath } from "node:url";

const here = path.dirname(fileURLToPath(import.meta.url));
const repo = path.resolve(here, "..", "..");

function usage(msg) {
  fs.writeSync(2, (msg ? msg + "\n" : "") +
    "usage: node run.mjs [--firmware] [--tree HOSTDIR[=VMDIR]] [--file HOST=VM] " +
    "[--cwd DIR] [--heapsize N] [--pystack N] [--async] SCRIPT.py|-\n");
  process.exit(2);
}

const opts = { trees: [], files: [], cwd: "/", heapsize: 4 << 20, pystack: 8192, async: false, script: null };
const argv = process.argv.slice(2);
for (let i = 0; i < argv.length; i++) {
  const a = argv[i];
  const val = () => { if (i + 1 >= argv.length) usage(`${a} needs a value`); return argv[++i]; };
  if (a === "--firmware") opts.trees.push([path.join(repo, "firmware"), "/"]);
  else if (a === "--tree") { const [h, v] = val().split("="); opts.trees.push([h, v || "/"]); }
  else if (a === "--file") { const s = val(); const k = s.lastIndexOf("="); if (k < 0) usage("--file needs HOST=VM"); opts.files.push([s.slice(0, k), s.slice(k + 1)]); }
  else if (a === "--cwd") opts.cwd = val();
  else if (a === "--heapsize") opts.heapsize = parseInt(val(), 10);
  else if (a === "--pystack") opts.pystack = parseInt(val(), 10);
  else if (a === "--async") opts.async = true;
  else if (a === "-h" || a === "--help") usage();
  else if (opts.script === null) opts.script = a;
  else usage(`unexpected argument ${a}`);
}
if (opts.script === null) usage("no script given");
const code = fs.readFileSync(opts.script === "-" ? 0 : opts.script, "utf8");

// Output: buffer bytes, write synchronously in large chunks.
function sink(fd) {
  let buf = Buffer.allocUnsafe(65536), n = 0;
  const flush = () => { if (n) { fs.writeSync(fd, buf, 0, n); n = 0; } };
  const put = (bytes) => {
    for (const b of bytes) { buf[n++] = b; if (n === buf.length) flush(); }
  };
  return { put, flush };
}
const out = sink(1), err = sink(2);

const mp = await loadMicroPython({
  heapsize: opts.heapsize, pystack: opts.pystack, linebuffer: false,
  stdout: out.put, stderr: err.put,
});

function mkdirTree(p) { if (p !== "/" && p !== "") mp.FS.mkdirTree(p); }
function copyTree(host, vm) {
  mkdirTree(vm);
  for (const ent of fs.readdirSync(host, { withFileTypes: true })) {
    if (ent.name === "__pycache__" || ent.name.startsWith(".")) continue;
    const h = path.join(host, ent.name), v = path.posix.join(vm, ent.name);
    if (ent.isDirectory()) copyTree(h, v);
    else if (ent.isFile()) mp.FS.writeFile(v, fs.readFileSync(h));
  }
}
for (const [h, v] of opts.trees) copyTree(h, v);
for (const [h, v] of opts.files) { mkdirTree(path.posix.dirname(v)); mp.FS.writeFile(v, fs.readFileSync(h)); }
mkdirTree(opts.cwd);
mp.FS.chdir(opts.cwd);

let rc = 0;
try {
  if (opts.async) await mp.runPythonAsync(code);
  else mp.runPython(code);
} catch (e) {
  if (e && e.type === "SystemExit") {
    const m = /SystemExit: ?(.*)\n?$/.exec(e.message || "");
    const arg = m ? m[1].trim() : "";
    if (arg === "" || arg === "0" || arg === "None") rc = 0;
    else if (/^-?\d+$/.test(arg)) rc = parseInt(arg, 10) & 255 || 1;
    else { err.put(Buffer.from(arg + "\n")); rc = 1; }
  } else {
    out.flush();
    err.put(Buffer.from(e && e.message ? e.message : String(e)));
    rc = 1;
  }
}
out.flush();
err.flush();
process.exit(rc);
