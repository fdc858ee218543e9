"""`python -m fastrnn.sample RUN_FOLDER [--prime TEXT] [--length N] ...`

(The function fastrnn.sample lives in fastrnn.sampling; this module is only the
command line.)"""
import sys

from fastrnn.cli import sample_main

if __name__ == "__main__":
    sys.exit(sample_main())
