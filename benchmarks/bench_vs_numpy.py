"""fastrnn against the numpy min-char-rnn; the same as `python -m fastrnn.bench`."""
import sys

from fastrnn.bench import main

if __name__ == "__main__":
    sys.exit(main())
