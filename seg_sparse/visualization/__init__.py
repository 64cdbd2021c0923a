"""Figures for sparse segmentation models (matplotlib, Agg canvas, no display needed).

* :func:`mask_overlay_figure` -- a street scene, its prediction and the sampled masks of chosen
  blocks over the image; :func:`stochastic_vs_deterministic_figure` -- one block, two samplers;
  :func:`detection_panel` / :func:`draw_detections` -- a detector's boxes over the image (the
  prediction panel of a detection model).
* :func:`collect_block_masks` / :func:`predict_with_masks` -- masks of a model's last forward
  at image size (:func:`collect_head_masks`: a sampled decode head's; :func:`image_geometry`:
  where a prediction's masks go); :func:`use_sampler` switches the sampler of a trained model
  temporarily.
* :func:`prediction_panel` -- a Seg/DetDataSample's prediction as the figures draw it;
  :func:`figure_to_rgb` -- a figure as an RGB array (for mmengine's ``Visualizer``).
* :func:`sparsity_bar_chart` -- per-block conv1/conv2/conv3 densities, one panel per model;
  :func:`region_density_chart` -- density on class boundaries vs interiors and per class.
* :func:`speed_accuracy_curve` -- GFLOPs vs accuracy, one line per method family.
"""

from .charts import region_density_chart, sparsity_bar_chart, speed_accuracy_curve
from .detections import detection_classes, detection_panel, draw_detections, prediction_panel
from .figures import (
    colorize,
    mask_overlay_figure,
    overlay_mask,
    resize_to,
    stochastic_vs_deterministic_figure,
)
from .mask_collection import (
    BlockMasks,
    HeadMask,
    collect_block_masks,
    collect_head_masks,
    default_blocks,
    image_geometry,
    predict_with_masks,
    resolve_blocks,
    sampling_blocks,
    use_sampler,
)
from .style import CITYSCAPES_CLASSES, CITYSCAPES_PALETTE, figure_to_rgb, save_figure

__all__ = [
    "CITYSCAPES_CLASSES",
    "CITYSCAPES_PALETTE",
    "BlockMasks",
    "HeadMask",
    "collect_block_masks",
    "collect_head_masks",
    "colorize",
    "default_blocks",
    "detection_classes",
    "detection_panel",
    "draw_detections",
    "figure_to_rgb",
    "image_geometry",
    "mask_overlay_figure",
    "overlay_mask",
    "predict_with_masks",
    "prediction_panel",
    "region_density_chart",
    "resize_to",
    "resolve_blocks",
    "sampling_blocks",
    "save_figure",
    "sparsity_bar_chart",
    "speed_accuracy_curve",
    "stochastic_vs_deterministic_figure",
    "use_sampler",
]
