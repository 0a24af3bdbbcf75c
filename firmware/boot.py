# Runs first at every reset. Kept tiny: the work starts in main.py.
# fwboot (installed at the root by tools/provision, never replaced over the
# air) picks the firmware version: /fw/a or /fw/b, see concentrator/fwboot.py.
import gc
import sys
try:
    import fwboot
    fwboot.boot()
    del fwboot
    sys.modules.pop("fwboot", None)   # not kept in the heap: whoever needs it imports it again
except ImportError:
    pass                # a board provisioned before OTA: the package at the root
gc.collect()
