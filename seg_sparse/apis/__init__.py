"""What the CLI, the analysis commands and the demo share, so each rule exists once.

* :mod:`.config` -- :func:`load_config`: read a config, merge checked ``--cfg-options``
  (:mod:`.config_options`), set the data root, check the values (:mod:`.config_values`);
* :mod:`.model` -- build a config's model for evaluation and load a checkpoint into it,
  refusing a checkpoint of another architecture;
* :mod:`.compile` -- ``torch.compile`` of a model's network modules and of mmengine's training
  step (``--compile``).
* :mod:`.inference` -- :func:`inference_with_masks`: an image's prediction with its sampling
  masks and densities (docs/inference.md); :mod:`.inferencers` -- mmseg's / mmdet's
  Inferencers that also return densities and masks and draw mask figures.

Everything here raises :class:`~seg_sparse.errors.UserInputError` subclasses for bad input.
"""

from .compile import COMPILED_PARTS, compile_model, enable_compiled_training
from .config import DATALOADERS, ConfigError, load_config, set_data_root
from .config_options import ConfigKeyError, merge_checked_options
from .config_values import ConfigValueError, check_config_values
from .inference import MaskedPrediction, inference_with_masks
from .model import (
    CheckpointMismatchError,
    NonFiniteWeightsError,
    build_eval_model,
    check_checkpoint_matches,
    check_finite_weights,
    check_state_dict_matches,
    checkpoint_state_dict,
    load_weights,
)

__all__ = [
    "COMPILED_PARTS",
    "DATALOADERS",
    "CheckpointMismatchError",
    "ConfigError",
    "ConfigKeyError",
    "ConfigValueError",
    "MaskedPrediction",
    "NonFiniteWeightsError",
    "build_eval_model",
    "check_checkpoint_matches",
    "check_config_values",
    "check_finite_weights",
    "check_state_dict_matches",
    "checkpoint_state_dict",
    "compile_model",
    "enable_compiled_training",
    "inference_with_masks",
    "load_config",
    "load_weights",
    "merge_checked_options",
    "set_data_root",
]
