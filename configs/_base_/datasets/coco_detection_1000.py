# COCO 2017 detection at the paper's size: short side 1000, long side at most 1666 (padded to
# multiples of 32 by the data preprocessor), horizontal flip in training; 8 GPUs x 1 image.
# Layout: data/coco/annotations/instances_{train,val}2017.json, data/coco/{train,val}2017/.
# CheckedCocoDataset / SparseCocoMetric refuse malformed annotation files and missing images
# with a message naming the file and entry (docs/detection.md, "Bad input"); the dataset builds
# LoadImageFromFile as seg_sparse's checked loader (an undecodable image is named), under the
# stock name that mmdet's inference_detector and DetInferencer look for.
dataset_type = 'CheckedCocoDataset'
data_root = 'data/coco/'
short_side = 1000
long_side = 1666
train_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='LoadAnnotations', with_bbox=True),
    dict(type='Resize', scale=(long_side, short_side), keep_ratio=True),
    dict(type='RandomFlip', prob=0.5),
    dict(type='PackDetInputs')
]
test_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='Resize', scale=(long_side, short_side), keep_ratio=True),
    dict(type='LoadAnnotations', with_bbox=True),
    dict(type='PackDetInputs',
         meta_keys=('img_id', 'img_path', 'ori_shape', 'img_shape', 'scale_factor'))
]
train_dataloader = dict(
    batch_size=1,
    num_workers=2,
    persistent_workers=True,
    sampler=dict(type='DefaultSampler', shuffle=True),
    batch_sampler=dict(type='AspectRatioBatchSampler'),
    dataset=dict(
        type=dataset_type,
        data_root=data_root,
        ann_file='annotations/instances_train2017.json',
        data_prefix=dict(img='train2017/'),
        filter_cfg=dict(filter_empty_gt=True, min_size=32),
        pipeline=train_pipeline))
val_dataloader = dict(
    batch_size=1,
    num_workers=2,
    persistent_workers=True,
    drop_last=False,
    sampler=dict(type='DefaultSampler', shuffle=False),
    dataset=dict(
        type=dataset_type,
        data_root=data_root,
        ann_file='annotations/instances_val2017.json',
        data_prefix=dict(img='val2017/'),
        test_mode=True,
        pipeline=test_pipeline))
test_dataloader = val_dataloader
# COCOeval bbox mAP plus backbone GFLOPs (dense and as executed) and per-block densities.
val_evaluator = dict(
    type='SparseCocoMetric',
    ann_file=data_root + 'annotations/instances_val2017.json',
    metric='bbox',
    format_only=False)
test_evaluator = val_evaluator
