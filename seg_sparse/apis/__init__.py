"""What the CLI, the analysis commands and the demo share: reading and checking a config."""

from .config_values import ConfigValueError, check_config_values

__all__ = ["ConfigValueError", "check_config_values"]
