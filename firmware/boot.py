# Runs first at every reset. Kept tiny: the work starts in main.py.
import gc
gc.collect()
