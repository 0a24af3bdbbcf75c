"""Run Python code in the real MicroPython VM (the WebAssembly port from npm).

    from sim.mpvm import run_micropython
    out = run_micropython("import sys; print(sys.implementation.name)")

The VM is `@micropython/micropython-webassembly-pyscript` (pinned in the
repository's package.json; `npm install` at the repository root), driven by
`sim/mpvm/run.mjs` under Node.  Each call starts a fresh VM in a fresh Node
process: the firmware tree is copied into the VM's / (as on the board's
flash, so `import concentrator.tariff` works), extra files are copied in,
the code runs, and its stdout is returned.
"""

import os
import shutil
import subprocess
import tempfile

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
RUNNER = os.path.join(ROOT, "sim", "mpvm", "run.mjs")
PACKAGE = "@micropython/micropython-webassembly-pyscript"


class MicroPythonError(RuntimeError):
    """The script failed inside the VM (or the VM could not run it).

    .traceback: the VM's stderr (MicroPython traceback), .stdout: what the
    script printed before failing, .returncode: the runner's exit code."""

    def __init__(self, message, traceback="", stdout="", returncode=None):
        super().__init__(message)
        self.traceback = traceback
        self.stdout = stdout
        self.returncode = returncode


def node_binary():
    node = shutil.which("node")
    if not node:
        raise MicroPythonError("node (Node.js >= 18) is not on PATH; it runs the MicroPython VM")
    return node


def vm_available():
    """True when Node and the npm package are installed (for a clear error)."""
    return bool(shutil.which("node")) and os.path.isdir(
        os.path.join(ROOT, "node_modules", *PACKAGE.split("/")))


def run_micropython(code, files=None, firmware=True, timeout=120, heapsize=4 << 20,
                    cwd="/", run_async=False):
    """Run `code` in a fresh MicroPython VM and return its stdout (str).

    files: {vm_path: bytes | str} copied into the VM's filesystem first
           (relative paths are taken from /).
    firmware: copy the repository's firmware/ tree into the VM's / first.
    timeout: seconds of wall time before the VM is killed.
    heapsize: initial GC heap in bytes.
    run_async: use runPythonAsync (top-level `await` allowed).
    Raises MicroPythonError (with the VM's traceback) when the code raises,
    calls sys.exit with a non-zero code, or times out."""
    if not os.path.isdir(os.path.join(ROOT, "node_modules", *PACKAGE.split("/"))):
        raise MicroPythonError("npm package %s is not installed: run `npm install` in %s"
                               % (PACKAGE, ROOT))
    cmd = [node_binary(), RUNNER, "--heapsize", str(int(heapsize)), "--cwd", cwd]
    if firmware:
        cmd.append("--firmware")
    if run_async:
        cmd.append("--async")
    with tempfile.TemporaryDirectory(prefix="mpvm-") as tmp:
        if files:
            tree = os.path.join(tmp, "tree")
            for vpath, data in files.items():
                rel = vpath.lstrip("/")
                if not rel or ".." in rel.split("/"):
                    raise ValueError("bad VM path %r" % (vpath,))
                host = os.path.join(tree, *rel.split("/"))
                os.makedirs(os.path.dirname(host), exist_ok=True)
                if isinstance(data, str):
                    data = data.encode("utf-8")
                with open(host, "wb") as f:
                    f.write(data)
            cmd += ["--tree", tree + "=/"]
        script = os.path.join(tmp, "main_script.py")
        with open(script, "w", encoding="utf-8") as f:
            f.write(code)
        cmd.append(script)
        try:
            proc = subprocess.run(cmd, capture_output=True, timeout=timeout, cwd=ROOT)
        except subprocess.TimeoutExpired as ex:
            out = (ex.stdout or b"").decode("utf-8", "replace")
            raise MicroPythonError("MicroPython VM timed out after %s s" % timeout,
                                   (ex.stderr or b"").decode("utf-8", "replace"), out)
    out = proc.stdout.decode("utf-8", "replace")
    err = proc.stderr.decode("utf-8", "replace")
    if proc.returncode != 0:
        last = err.strip().splitlines()[-1] if err.strip() else "exit code %d" % proc.returncode
        raise MicroPythonError("MicroPython raised: %s\n%s" % (last, err), err, out,
                               proc.returncode)
    return out


if __name__ == "__main__":  # python -m sim.mpvm script.py
    import sys
    if len(sys.argv) != 2:
        sys.exit("usage: python -m sim.mpvm SCRIPT.py")
    with open(sys.argv[1], encoding="utf-8") as f:
        try:
            sys.stdout.write(run_micropython(f.read()))
        except MicroPythonError as ex:
            sys.stdout.write(ex.stdout)
            sys.stderr.write(ex.traceback)
            sys.exit(1)
