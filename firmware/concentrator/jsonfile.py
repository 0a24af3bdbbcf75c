# Small JSON files over a HAL's open/rename/stat (the state file, the pushed
# tariff). Shared by every HAL (hal.Hal and hal_esp32.Esp32Hal) without the
# board having to load the documented base class in hal.py.
try:
    import ujson as json
except ImportError:
    import json


def exists(hal, path):
    try:
        hal.stat(path)
        return True
    except OSError:
        return False


def read_json(hal, path, default=None):
    try:
        with hal.open(path, "r") as f:
            return json.loads(f.read())
    except (OSError, ValueError):
        return default


def write_json(hal, path, obj):
    # atomic: write a temporary file, then rename over the old one
    tmp = path + ".tmp"
    with hal.open(tmp, "w") as f:
        f.write(json.dumps(obj))
    hal.rename(tmp, path)
