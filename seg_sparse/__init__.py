"""seg-sparse: spatially adaptive inference with stochastic feature sampling and interpolation.

Importing the package (e.g. through ``custom_imports=dict(imports=['seg_sparse'])`` in a
config) registers the toolkit's models, hooks, metrics and transforms with mmseg, mmdet and
mmengine, after installing the mmcv compatibility layer: at once when mmengine, mmseg or mmdet
is already imported, else as soon as mmseg or mmdet is (:mod:`seg_sparse.registration`). So the
plain-torch core, ``seg_sparse.sampling`` and ``seg_sparse.ops``, imports without them.
"""

from .registration import is_registered, register_all_modules, register_on_import

__version__ = "0.1.0"
__all__ = ["is_registered", "register_all_modules"]

register_on_import()
