"""A seconds-fast mmengine Runner (tiny conv net, 8 random images) for checkpoint tests.

It uses the toolkit's checkpoint hooks (``AtomicCheckpointHook``, ``SafeCheckpointHook``) in
mmseg's scope, as the configs do; the model adds dropout so that a resumed run only matches
the uninterrupted one if torch's random state is restored too.
"""

from __future__ import annotations

import itertools
import os

import numpy as np
import torch
import torch.nn.functional as F
from mmcv.cnn import build_norm_layer
from mmengine.evaluator import BaseMetric
from mmengine.logging import MessageHub
from mmengine.model import BaseModel
from mmengine.runner import Runner
from torch import nn
from torch.utils.data import Dataset

import seg_sparse  # noqa: F401  (registers the hooks, the loader and the allowlist)

MAX_ITERS = 6
_names = itertools.count()


class ToySegmentor(BaseModel):
    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(3, 4, 3, padding=1)
        # as in mmseg configs; mmengine reverts it to BN when not distributed
        self.bn = build_norm_layer(dict(type="SyncBN"), 4)[1]
        self.dropout = nn.Dropout2d(0.2)
        self.head = nn.Conv2d(4, 2, 1)

    def forward(self, inputs, labels=None, mode="tensor"):
        logits = self.head(self.dropout(F.relu(self.bn(self.conv(inputs)))))
        if mode == "loss":
            loss = F.cross_entropy(logits, labels)
            # numpy scalars in the runtime info, as mmengine's logger writes (its 'eta')
            MessageHub.get_current_instance().update_info("toy_loss", np.float64(loss.item()))
            return {"loss": loss}
        return logits


class ToyData(Dataset):
    """8 fixed images; each fetch adds numpy noise, like a random augmentation would."""

    def __init__(self) -> None:
        generator = torch.Generator().manual_seed(0)
        self.images = torch.randn(8, 3, 8, 8, generator=generator)
        self.labels = (self.images[:, 0] > 0).long()

    def __len__(self) -> int:
        return len(self.images)

    def __getitem__(self, index):
        noise = torch.from_numpy(np.random.normal(0, 0.1, (3, 8, 8)).astype(np.float32))
        return {"inputs": self.images[index] + noise, "labels": self.labels[index]}


class ToyMetric(BaseMetric):
    """A score that rises every evaluation, so each validation saves a new best checkpoint."""

    def __init__(self) -> None:
        super().__init__()
        self.evaluations = 0

    def process(self, data_batch, data_samples) -> None:
        self.results.append(1)

    def compute_metrics(self, results) -> dict:
        self.evaluations += 1
        return {"score": float(self.evaluations)}


def with_validation(interval: int) -> dict:
    """Runner arguments that validate every ``interval`` iterations with :class:`ToyMetric`."""
    return dict(
        val_dataloader=dict(dataset=ToyData(), batch_size=4, num_workers=0,
                            sampler=dict(type="DefaultSampler", shuffle=False),
                            collate_fn=dict(type="default_collate")),
        val_evaluator=[ToyMetric()], val_cfg=dict())


def make_runner(work_dir, max_iters: int = MAX_ITERS, interval: int = 3,
                max_keep_ckpts: int = -1, seed: int | None = 0, save_best: str | None = None,
                **kwargs) -> Runner:
    train_cfg = dict(by_epoch=False, max_iters=max_iters)
    if save_best:
        train_cfg["val_interval"] = interval
        kwargs.update(with_validation(interval))
    return Runner(
        model=ToySegmentor(),
        work_dir=str(work_dir),
        experiment_name=f"toy_{os.getpid()}_{next(_names)}",
        default_scope="mmseg",
        train_dataloader=dict(
            dataset=ToyData(), batch_size=2, num_workers=0,
            sampler=dict(type="DefaultSampler", shuffle=True),
            collate_fn=dict(type="default_collate"),
        ),
        optim_wrapper=dict(optimizer=dict(type="SGD", lr=0.1, momentum=0.9, weight_decay=1e-4)),
        param_scheduler=dict(type="PolyLR", power=0.9, eta_min=1e-4, by_epoch=False),
        train_cfg=train_cfg,
        default_hooks=dict(
            checkpoint=dict(type="AtomicCheckpointHook", interval=interval, by_epoch=False,
                            max_keep_ckpts=max_keep_ckpts, save_best=save_best, rule="greater"),
            logger=dict(type="LoggerHook", interval=1),
        ),
        custom_hooks=[dict(type="SafeCheckpointHook")],
        randomness=dict(seed=seed),
        log_level="WARNING",
        **kwargs,
    )
