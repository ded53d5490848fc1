"""Models: `Sequential`, the functional `Model`, summaries, saving and loading."""

from rnnkit.models.model import Model
from rnnkit.models.saving import load_model
from rnnkit.models.sequential import Sequential

__all__ = ["Model", "Sequential", "load_model"]
