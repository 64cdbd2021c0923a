"""Cityscapes dataset that fails clearly on a wrong root, an empty split or a bad file.

mmseg's ``CityscapesDataset`` silently yields an empty dataset when ``data_root`` or a split
folder is missing, which later surfaces as an obscure sampler error (or, worse, a run on
another split). This subclass checks the folders and the pairing of images and labels up front,
and reads every image's and label map's header (sizes only, nothing is decoded: well under a
second for Cityscapes' 500 val images) so that an empty or unreadable file, or an image whose
size differs from its label map, stops the run before it starts, naming the files. Its
pipeline's ``LoadImageFromFile`` and ``LoadAnnotations`` steps run as the checked loaders
(:mod:`.transforms`): a file that does not decode, a label value that is not a class of the
dataset, or a label map of another size than its image is named when it is loaded.
"""

from __future__ import annotations

import os.path as osp
from collections.abc import Sequence
from typing import Any

from mmengine.dataset import Compose
from mmseg.datasets import CityscapesDataset
from mmseg.registry import DATASETS

from .transforms import (
    CheckedLoadAnnotations,
    CheckedLoadImageFromFile,
    check_same_size,
    image_size,
    with_checked_loading,
)


@DATASETS.register_module()
class CheckedCityscapesDataset(CityscapesDataset):
    """``CityscapesDataset`` with explicit errors for missing folders, images or labels.

    ``pipeline``: as mmseg's; ``LoadImageFromFile`` / ``LoadAnnotations`` steps are built as
    :class:`CheckedLoadImageFromFile` / :class:`CheckedLoadAnnotations` (label values checked
    against this dataset's classes and ``ignore_index``).
    """

    def __init__(self, pipeline: Sequence[Any] = (), **kwargs: Any) -> None:
        super().__init__(pipeline=[], **kwargs)
        self.pipeline = Compose(with_checked_loading(pipeline, {
            "LoadImageFromFile": (CheckedLoadImageFromFile, {}),
            "LoadAnnotations": (CheckedLoadAnnotations, {
                "num_classes": len(self.metainfo["classes"]),
                "ignore_index": self.ignore_index}),
        }))

    def load_data_list(self) -> list[dict]:
        img_dir = self.data_prefix.get("img_path")
        ann_dir = self.data_prefix.get("seg_map_path")
        if self.data_root and not osp.isdir(self.data_root):
            raise FileNotFoundError(
                f"Cityscapes data_root '{self.data_root}' does not exist. Prepare the dataset "
                "(README: data_tools/cityscapes.py), generate synthetic scenes with "
                f"`seg-sparse gen-data {self.data_root}`, or point the config at the right "
                "root with `seg-sparse train/test ... --data-root DIR`."
            )
        for kind, folder in (("image", img_dir), ("label", ann_dir)):
            if folder and not osp.isdir(folder):
                raise FileNotFoundError(
                    f"Cityscapes {kind} folder '{folder}' does not exist (expected the "
                    f"layout leftImg8bit/<split>/<city>/ and gtFine/<split>/<city>/)."
                )
        data_list = super().load_data_list()
        if not data_list:
            raise FileNotFoundError(
                f"No images ending in '{self.img_suffix}' found under '{img_dir}'."
            )
        if ann_dir:
            missing = [d["seg_map_path"] for d in data_list if not osp.isfile(d["seg_map_path"])]
            if missing:
                raise FileNotFoundError(
                    f"{len(missing)} label map(s) missing, e.g. '{missing[0]}'. Run "
                    "data_tools/cityscapes.py to create *_labelTrainIds.png."
                )
        for item in data_list:
            size = image_size(item["img_path"])
            if ann_dir:
                check_same_size(item["img_path"], size, item["seg_map_path"],
                                image_size(item["seg_map_path"], "label map"))
        return data_list
