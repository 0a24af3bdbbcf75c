"""`pip install -e .` in a fresh virtual environment, from a copy of the
project's own files (no .venv, no node_modules, no build/mplib), then
`wattkeeper --help` and `wattkeeper db upgrade`: the head-end and the shared
firmware package install and run with nothing else present."""
import os
import shutil
import subprocess
import sys

from tests.support import ROOT


def test_fresh_venv_install_and_cli(tmp_path):
    files = subprocess.run(["git", "ls-files", "-z"], cwd=ROOT, capture_output=True, check=True).stdout
    src = tmp_path / "src"
    for rel in files.decode().split("\0"):
        if not rel or not os.path.exists(os.path.join(ROOT, rel)):
            continue
        os.makedirs(src / os.path.dirname(rel), exist_ok=True)
        shutil.copy2(os.path.join(ROOT, rel), src / rel)
    assert not (src / "build").exists() and not (src / "node_modules").exists()
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True, timeout=120)
    py = str(venv / "bin" / "python")
    r = subprocess.run([py, "-m", "pip", "install", "-q", "-e", str(src)], capture_output=True, text=True,
                       timeout=900)
    assert r.returncode == 0, r.stdout[-2000:] + r.stderr[-3000:]
    work = tmp_path / "elsewhere"
    work.mkdir()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("WK_", "PYTHON"))}
    r = subprocess.run([str(venv / "bin" / "wattkeeper"), "--help"], cwd=work, capture_output=True, text=True,
                       timeout=60, env=env)
    assert r.returncode == 0, r.stderr
    assert "serve" in r.stdout and "user" in r.stdout and "demo" in r.stdout
    # the installed package is the firmware's own module, and the CLI works on a database
    r = subprocess.run([py, "-c", "import concentrator.protocol as p, concentrator.tariff as t; print(p.__file__)"],
                       cwd=work, capture_output=True, text=True, timeout=60, env=env)
    assert r.returncode == 0 and r.stdout.strip().startswith(str(src / "firmware" / "concentrator")), r
    r = subprocess.run([str(venv / "bin" / "wattkeeper"), "--db", "sqlite:///" + str(work / "x.db"), "db", "upgrade"],
                       cwd=work, capture_output=True, text=True, timeout=120, env=env)
    assert r.returncode == 0, r.stderr
    assert not (src / "build" / "mplib").exists()
