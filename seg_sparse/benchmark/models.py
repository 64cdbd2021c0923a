"""The models ``seg-sparse bench`` compares: a sampling model and its dense twin (segmentors
and detectors alike)."""

from __future__ import annotations

import copy
from dataclasses import dataclass

import torch
from torch import nn


@dataclass
class BenchModels:
    """Eval copies for inference, separate train copies (SGD steps change their weights)."""

    sparse: nn.Module
    dense: nn.Module
    sparse_train: nn.Module | None
    dense_train: nn.Module | None
    num_classes: int
    label: str
    task: str = "segmentation"  # or "detection" (seg_sparse.apis.task)


def build_bench_models(config: str, checkpoint: str | None, cfg_options: dict | None,
                       device: str, trust_checkpoint: bool = False,
                       with_training: bool = False) -> BenchModels:
    """The config's sampling model (weights from ``checkpoint`` if given) and its dense twin:
    the same config with ``sampler='dense'`` (backbone, and a ``SparseFCNHead``'s sampling)
    and the same weights, minus the sampling layers."""
    import os.path as osp

    from seg_sparse.apis import ConfigError, build_eval_model, load_config, load_weights
    from seg_sparse.apis.export import dense_twin_config
    from seg_sparse.apis.task import config_task, is_detection

    cfg = load_config(config, cfg_options)
    backbone_cfg = cfg.model.get("backbone", {})
    if backbone_cfg.get("sampler", "stochastic") == "dense" or "sampler" not in backbone_cfg:
        raise ConfigError(f"'{config}' is not a sampling model (model.backbone.sampler must "
                           "be 'stochastic', 'deterministic' or 'relu'); bench compares a "
                           "sampling model with its dense twin")
    torch.manual_seed(0)
    sparse = build_eval_model(cfg)
    if checkpoint:
        load_weights(sparse, checkpoint, trust_checkpoint)
    dense = build_eval_model(dense_twin_config(cfg))
    result = dense.load_state_dict(sparse.state_dict(), strict=False)
    if result.missing_keys:
        raise ConfigError(f"the dense twin of '{config}' has weights the sampling model lacks:"
                           f" {result.missing_keys[:5]}")
    sparse, dense = sparse.to(device).eval(), dense.to(device).eval()
    sparse_train = copy.deepcopy(sparse).train() if with_training else None
    dense_train = copy.deepcopy(dense).train() if with_training else None
    num_classes = (cfg.model.roi_head.bbox_head.num_classes if is_detection(cfg)
                   else cfg.model.decode_head.num_classes)
    return BenchModels(sparse, dense, sparse_train, dense_train, int(num_classes),
                       osp.splitext(osp.basename(config))[0], config_task(cfg))


def preprocess_image(model: nn.Module, path: str) -> torch.Tensor:
    """``path`` read and normalized by the model's data preprocessor: (1, 3, H, W)."""
    import mmcv

    from seg_sparse.datasets.image_files import check_images_decode

    check_images_decode([path])  # one-line error naming a bad file
    image = mmcv.imread(path)
    tensor = torch.from_numpy(image).permute(2, 0, 1).contiguous()
    data = model.data_preprocessor(dict(inputs=[tensor], data_samples=None), training=False)
    return data["inputs"]
