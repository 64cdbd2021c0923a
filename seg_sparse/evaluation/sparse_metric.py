"""Accuracy metrics that also report GFLOPs and per-block sampling densities.

:class:`SparseIoUMetric` (mmseg's ``IoUMetric``) and :class:`SparseCityscapesMetric` (the
official Cityscapes evaluation) add, to the same metrics dict and one logged table:

* ``gflops_backbone_dense``, ``gflops_head``, ``gflops_total_dense``: the network at the
  evaluated input shape with every position computed (docs/design.md, "FLOPs convention");
* ``gflops_backbone_sparse``, ``gflops_total_sparse``: as executed, with the measured densities;
* ``density_mean`` (mean over sampling blocks of (d1 + d2) / 2; 1.0 for the ``dense`` sampler's
  blocks, which report (1, 1)) and ``sampling_densities``
  (block -> [d1, d2], a non-scalar that mmengine logs and writes to the test metrics JSON);
* with a sampled decode head (``SparseFCNHead``): ``gflops_head_sparse`` (the head as
  executed; ``gflops_total_sparse`` includes it), ``head_density_mean`` and
  ``head_sampling_densities`` (head conv -> density).

Densities come from the ``sampling_densities`` / ``sampling_input_shape`` metainfo that
:class:`~seg_sparse.models.SparseEncoderDecoder` attaches to every prediction; they are averaged
over images, gathered from all ranks with mmengine's ``collect_results`` (the same gathering,
truncation of sampler padding included, as the accuracy results). GFLOPs need the model, which
mmengine metrics never see: :class:`~seg_sparse.evaluation.SparseFlopsHook` (in
``custom_hooks``) hands it over before every validation / test; without it the GFLOPs keys are
missing and a warning says how to add the hook. The mean densities are applied to the profile
of each image's input shape and averaged over images. Models without densities (plain mmseg
segmentors) get the dense figures only, at the ``batch_input_shape`` of their predictions.
The counts are for whole-image inference (``test_cfg=dict(mode='whole')``); slide inference
runs the network once per crop, which this metric does not multiply in. Test-time augmentation
(``seg-sparse test --tta``, :mod:`seg_sparse.models.tta`) runs it once per augmentation: those
predictions list every pass's input shape (``sampling_input_shapes``), and the GFLOPs per image
are the sum over them.
"""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Mapping, Sequence
from typing import Any

from mmengine.dist import collect_results
from mmengine.logging import print_log
from mmseg.evaluation.metrics import IoUMetric
from mmseg.registry import METRICS
from torch import nn

from seg_sparse.flops import FlopsReport, count_flops
from seg_sparse.models.segmentors import DENSITIES_KEY, HEAD_DENSITIES_KEY, INPUT_SHAPE_KEY
from seg_sparse.models.sparse_model import INPUT_SHAPES_KEY

from .cityscapes_official import CityscapesOfficialMetric

#: Fallback metainfo keys for the network input shape of models that do not report densities.
_SHAPE_KEYS = (INPUT_SHAPE_KEY, "batch_input_shape", "img_shape")

#: Accuracy figures repeated in the logged GFLOPs table.
_ACCURACY_KEYS = ("mIoU", "aAcc", "mAcc", "averageScoreClasses")

#: {"densities": {name: (d1, d2)} | None, "head_densities": {name: d} | None,
#:  "input_shape": (H, W), "input_shapes": ((H, W), ...) one per network forward}
SamplingRecord = dict[str, Any]


def _field(sample: Any, key: str) -> Any:
    """A metainfo field of a SegDataSample, or a key of the dict mmengine's Evaluator passes."""
    if isinstance(sample, Mapping):
        return sample.get(key)
    return sample.metainfo.get(key) if hasattr(sample, "metainfo") else None


def sampling_record(sample: Any) -> SamplingRecord:
    """Plain-data densities and input shape of one prediction (cheap to gather across ranks)."""
    densities = _field(sample, DENSITIES_KEY)
    if densities is not None:
        densities = {str(k): (float(v[0]), float(v[1])) for k, v in densities.items()}
    head = _field(sample, HEAD_DENSITIES_KEY)
    if head is not None:
        head = {str(k): float(v) for k, v in head.items()}
    shape = next((s for s in (_field(sample, k) for k in _SHAPE_KEYS) if s is not None), None)
    shape = None if shape is None else (int(shape[0]), int(shape[1]))
    passes = _field(sample, INPUT_SHAPES_KEY)
    return {
        "densities": densities,
        "head_densities": head,
        "input_shape": shape,
        "input_shapes": (tuple((int(h), int(w)) for h, w in passes) if passes is not None
                         else () if shape is None else (shape,)),
    }


def _mean_over_images(records: Sequence[SamplingRecord],
                      key: str) -> dict[str, tuple[float, ...]] | None:
    """Per name under ``key``, the mean over the images that carry it (values: a number or
    a tuple of numbers); None if no image carries any."""
    sums: dict[str, list[float]] = {}
    counts: Counter[str] = Counter()
    for record in records:
        for name, values in (record.get(key) or {}).items():
            values = tuple(values) if isinstance(values, (tuple, list)) else (values,)
            acc = sums.setdefault(name, [0.0] * len(values))
            for i, value in enumerate(values):
                acc[i] += value
            counts[name] += 1
    if not sums:
        return None
    return {name: tuple(v / counts[name] for v in acc) for name, acc in sums.items()}


def mean_densities(records: Sequence[SamplingRecord]) -> dict[str, tuple[float, float]] | None:
    """Per block, the mean over images of (d1, d2); None if no image carries densities."""
    means = _mean_over_images(records, "densities")
    return None if means is None else {name: (m[0], m[1]) for name, m in means.items()}


def mean_head_densities(records: Sequence[SamplingRecord]) -> dict[str, float] | None:
    """Per sampled head conv, the mean density over images; None if no image carries one."""
    means = _mean_over_images(records, "head_densities")
    return None if means is None else {name: m[0] for name, m in means.items()}


class SamplingMetricMixin:
    """Adds GFLOPs and sampling densities to an mmengine metric (put it first in the bases).

    ``self.results`` is left exactly as the wrapped metric fills it; the per-image sampling
    records are kept in a parallel list and gathered separately in :meth:`evaluate`.
    """

    results: list
    #: accuracy figures repeated in the logged GFLOPs table
    accuracy_keys: tuple[str, ...] = _ACCURACY_KEYS

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.sampling_records: list[SamplingRecord] = []
        self._gathered: list[SamplingRecord] | None = None
        self._flops_model: nn.Module | None = None
        self._profiles: dict[tuple[int, int], FlopsReport] = {}
        #: the last :class:`FlopsReport` (with mean densities) computed by compute_metrics
        self.last_report: FlopsReport | None = None

    def set_flops_model(self, model: nn.Module | None) -> None:
        """The (unwrapped) segmentor whose GFLOPs to report; profiles are measured lazily, at
        ``compute_metrics`` time, one dummy forward per distinct input shape."""
        if model is not self._flops_model:
            self._profiles.clear()
        self._flops_model = model

    def process(self, data_batch: Any, data_samples: Sequence[Any]) -> None:
        super().process(data_batch, data_samples)  # type: ignore[misc]
        self.sampling_records.extend(sampling_record(s) for s in data_samples)

    def evaluate(self, size: int) -> dict:
        device: str = getattr(self, "collect_device", "cpu")
        kwargs = {"tmpdir": getattr(self, "collect_dir", None)} if device == "cpu" else {}
        self._gathered = collect_results(self.sampling_records, size, device, **kwargs)
        self.sampling_records = []
        try:
            return super().evaluate(size)  # type: ignore[misc]
        finally:
            self._gathered = None

    def compute_metrics(self, results: list) -> dict:
        metrics = dict(super().compute_metrics(results))  # type: ignore[misc]
        records = self._gathered if self._gathered is not None else self.sampling_records
        extra, report = self._sampling_metrics(records)
        metrics.update(extra)
        self.last_report = report
        if report is not None:
            accuracy = {k: v for k, v in metrics.items() if k in self.accuracy_keys}
            print_log("\n" + report.format_table(
                title=f"{type(self).__name__}: GFLOPs and sampling densities",
                extra_rows=accuracy,
            ), logger="current")
        return metrics

    def flops_profile(self, shape: tuple[int, int]) -> FlopsReport:
        """The model's dense MAC profile at ``shape`` (cached per shape)."""
        shape = (int(shape[0]), int(shape[1]))
        if shape not in self._profiles:
            if self._flops_model is None:
                raise RuntimeError(f"{type(self).__name__} has no model: call "
                                   "set_flops_model(model) or use SparseFlopsHook")
            self._profiles[shape] = count_flops(self._flops_model, shape)
        return self._profiles[shape]

    # -- internals ----------------------------------------------------------------------------
    def _sampling_metrics(
        self, records: Sequence[SamplingRecord]
    ) -> tuple[dict[str, Any], FlopsReport | None]:
        metrics: dict[str, Any] = {}
        densities = mean_densities(records)
        head_densities = mean_head_densities(records)
        shapes = Counter(s for r in records for s in r.get("input_shapes", ()))
        images = sum(1 for r in records if r.get("input_shapes"))
        if self._flops_model is None or not shapes:
            why = ("no model was handed over: add dict(type='SparseFlopsHook') to custom_hooks"
                   if self._flops_model is None else "the predictions carry no input shape")
            print_log(f"{type(self).__name__}: GFLOPs not reported, {why}", logger="current",
                      level=logging.WARNING)
            report = None
        else:
            reports = {s: self.flops_profile(s).with_densities(densities, head_densities)
                       for s in shapes}
            report = reports[shapes.most_common(1)[0][0]]

            def mean(attr: str) -> float:  # per image: the sum over its forward passes
                return sum(getattr(reports[s], attr) * c for s, c in shapes.items()) / images

            metrics.update(
                gflops_backbone_dense=mean("backbone_dense"),
                gflops_head=mean("head_gflops"),
                gflops_total_dense=mean("total_dense"),
            )
            if densities is not None:
                metrics["gflops_backbone_sparse"] = mean("backbone_sparse")
            if head_densities is not None:
                metrics["gflops_head_sparse"] = mean("head_sparse")
            if report.has_densities:
                metrics["gflops_total_sparse"] = mean("total_sparse")
        if densities is not None:
            mean_density = report.mean_density() if report is not None else None
            if mean_density is None:  # no model, or no sampling block: all reported blocks
                mean_density = sum(a + b for a, b in densities.values()) / (2 * len(densities))
            metrics["density_mean"] = mean_density
            metrics["sampling_densities"] = {
                k: [round(d1, 4), round(d2, 4)] for k, (d1, d2) in densities.items()
            }
        if head_densities is not None:
            metrics["head_density_mean"] = sum(head_densities.values()) / len(head_densities)
            metrics["head_sampling_densities"] = {
                k: round(d, 4) for k, d in head_densities.items()}
        return metrics, report


@METRICS.register_module()
class SparseIoUMetric(SamplingMetricMixin, IoUMetric):
    """mmseg's ``IoUMetric`` (same arguments) plus GFLOPs and per-block densities."""


@METRICS.register_module()
class SparseCityscapesMetric(SamplingMetricMixin, CityscapesOfficialMetric):
    """The official Cityscapes evaluation (``CityscapesOfficialMetric``, same arguments) plus
    GFLOPs and per-block densities."""
