# Starts the concentrator. Ctrl-C gives the technician's console (help()).
from concentrator import board
board.main()
