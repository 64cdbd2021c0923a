"""seg-sparse: spatially adaptive inference with stochastic feature sampling and interpolation.

Importing the package (e.g. through ``custom_imports=dict(imports=['seg_sparse'])`` in a
config) first installs the mmcv compatibility layer (before anything imports mmseg or mmdet),
then registers the toolkit's models, hooks, metrics and transforms with mmseg, mmdet and
mmengine.
"""

from . import compat  # noqa: F401, I001  (must run before anything imports mmseg)
from . import datasets, engine, evaluation, models  # noqa: F401

__version__ = "0.1.0"
