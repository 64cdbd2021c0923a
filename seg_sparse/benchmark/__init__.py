"""Wall-clock benchmarks of the inference execution paths and of training (``seg-sparse bench``).

:mod:`.masks` builds masks at set densities, :mod:`.timing` measures (alternated runs, medians,
peak memory), :mod:`.inference` and :mod:`.training` produce the rows the command prints.
"""

from .compiled import CompileRow, benchmark_compile
from .density_masks import exact_density_mask, masks_at_density, recorded_masks
from .inference import InferenceRow, benchmark_inference
from .timing import alternated_medians, freed_memory_tracked, peak_memory_bytes
from .training import TrainingRow, benchmark_training

__all__ = [
    "CompileRow",
    "InferenceRow",
    "TrainingRow",
    "alternated_medians",
    "benchmark_compile",
    "benchmark_inference",
    "benchmark_training",
    "exact_density_mask",
    "freed_memory_tracked",
    "masks_at_density",
    "peak_memory_bytes",
    "recorded_masks",
]
