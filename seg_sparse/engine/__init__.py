"""engine."""

from . import checkpoint_hooks  # noqa: F401  (registers SafeCheckpointHook)
from .temperature_hook import SparseTemperatureHook  # noqa: F401  (registers it)
