"""fastrnn: a Numba-accelerated trainer for character-level recurrent networks."""
from .config import Config
from .errors import UserError
from .sampling import sample
from .trainer import Trainer, load

__version__ = "0.1.0"
__all__ = ["Config", "Trainer", "UserError", "load", "sample", "__version__"]
