# Cityscapes (2975 train / 500 val, 19 classes, trainIds labels) at full resolution
# (short side 1024), random scale 0.5-2.0, random 512x1024 crop, random flip and mmseg's
# photometric distortion.
# Another image size (e.g. the uniform-sampling baselines): `short_side` and `crop_size` are
# copied into the pipelines below when this file is read, so overriding them alone changes
# nothing. Restate `train_pipeline` and `test_pipeline` with the new values, put them into the
# dataloaders (`train_dataloader = dict(dataset=dict(pipeline=train_pipeline))`, the same for
# val/test) and set `model.data_preprocessor.size` to the crop, as
# ../../fcn_dcn/fcn_r50-d8-dcn_4xb2-60k_cityscapes-uniform512.py does.
# CheckedCityscapesDataset builds LoadImageFromFile / LoadAnnotations as seg_sparse's checked
# loaders (a bad file or a label outside the 19 classes is named); the pipelines use the stock
# names, which mmseg's inference_model and MMSegInferencer strip and swap.
dataset_type = 'CheckedCityscapesDataset'
data_root = 'data/cityscapes/'
short_side = 1024
crop_size = (512, 1024)
train_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='LoadAnnotations'),
    dict(type='RandomResize', scale=(2 * short_side, short_side), ratio_range=(0.5, 2.0),
         keep_ratio=True),
    dict(type='RandomCrop', crop_size=crop_size, cat_max_ratio=0.75),
    dict(type='RandomFlip', prob=0.5),
    dict(type='PhotoMetricDistortion'),
    dict(type='PackSegInputs')
]
test_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='Resize', scale=(2 * short_side, short_side), keep_ratio=True),
    # Labels are loaded after Resize: predictions are resized back and scored at full size.
    dict(type='LoadAnnotations'),
    dict(type='PackSegInputs')
]
train_dataloader = dict(
    batch_size=2,
    num_workers=2,
    persistent_workers=True,
    sampler=dict(type='InfiniteSampler', shuffle=True),
    dataset=dict(
        type=dataset_type,
        data_root=data_root,
        data_prefix=dict(img_path='leftImg8bit/train', seg_map_path='gtFine/train'),
        pipeline=train_pipeline))
val_dataloader = dict(
    batch_size=1,
    num_workers=4,
    persistent_workers=True,
    sampler=dict(type='DefaultSampler', shuffle=False),
    dataset=dict(
        type=dataset_type,
        data_root=data_root,
        data_prefix=dict(img_path='leftImg8bit/val', seg_map_path='gtFine/val'),
        pipeline=test_pipeline))
test_dataloader = val_dataloader
# mmseg's IoU metric plus GFLOPs (dense / executed) and per-block sampling densities (needs
# SparseFlopsHook in custom_hooks). The official cityscapesscripts evaluation:
# `seg-sparse test --cityscapes-eval`, or dict(type='SparseCityscapesMetric', output_dir=...).
val_evaluator = dict(type='SparseIoUMetric', iou_metrics=['mIoU'])
test_evaluator = val_evaluator
