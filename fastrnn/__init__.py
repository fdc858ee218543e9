"""fastrnn: a Numba-accelerated trainer for character-level recurrent networks."""
from .config import Config
from .errors import UserError
from .trainer import Trainer

__version__ = "0.1.0"
__all__ = ["Config", "Trainer", "UserError", "__version__"]
