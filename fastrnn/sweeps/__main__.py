"""`python -m fastrnn.sweeps`, the same command as `python -m fastrnn.sweep`."""
import sys

from .cli import main

sys.exit(main())
