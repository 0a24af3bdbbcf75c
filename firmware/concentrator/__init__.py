__version__ = "0.1.0"


def unload(name):
    # Forget concentrator.<name>, a module used only now and then: on
    # MicroPython its bytecode is freed from the heap (its qstrs stay); the
    # next import loads it again. CPython keeps it.
    import sys
    if sys.implementation.name == "micropython":
        sys.modules.pop("concentrator." + name, None)
        globals().pop(name, None)
