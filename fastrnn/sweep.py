"""`python -m fastrnn.sweep`: the sweep command, whose code is fastrnn.sweeps.cli."""
import sys

from .sweeps.cli import main

if __name__ == "__main__":
    sys.exit(main())
