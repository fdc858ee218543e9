"""fastrnn: a Numba-accelerated trainer for character-level recurrent networks."""
from .config import Config
from .errors import UserError
from .model import Model, load_model
from .sampling import sample
from .trainer import Trainer, load

__version__ = "0.1.0"
__all__ = ["Config", "Model", "Trainer", "UserError", "load", "load_model", "sample",
           "__version__"]
