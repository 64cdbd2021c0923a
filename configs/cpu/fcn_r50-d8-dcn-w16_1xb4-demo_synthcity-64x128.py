# Dense twin used by `seg-sparse demo`: the CPU family of
# ./fcn_r50-d8-dcn-w16_1xb4-300i_synthcity-128x256.py (same architecture: 1/4-width dilated
# ResNetV1c-50 with DCN in conv3-conv5, FCN head) shrunk so that both demo models train on 2 CPU
# cores in a few minutes. Differences, all for speed:
# * 128x256 scenes, 64x128 training crops, evaluation on the full 128x256 image;
# * AdamW (lr 5e-3) instead of SGD: from random initialisation it reaches a usable model in
#   tens of iterations where SGD at lr 0.01 barely leaves chance level (measured on the demo's
#   24 scenes without DCN, val mIoU: lr 2e-3 19.3 / 22.8 after 40 / 100 iterations, lr 5e-3
#   22.1 / 28.1);
# * 200 iterations (the demo's --iters overrides it), log every 5.
# ./sparse-fcn_r50-d8-dcn-w16_1xb4-demo_synthcity-64x128.py is its sparse twin.
_base_ = ['./fcn_r50-d8-dcn-w16_1xb4-300i_synthcity-128x256.py']
short_side = 128
crop_size = (64, 128)
model = dict(
    data_preprocessor=dict(size=crop_size),
    backbone=dict())
train_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='LoadAnnotations'),
    dict(type='RandomResize', scale=(2 * short_side, short_side), ratio_range=(0.5, 2.0),
         keep_ratio=True),
    dict(type='RandomCrop', crop_size=crop_size, cat_max_ratio=0.75),
    dict(type='RandomFlip', prob=0.5),
    dict(type='PackSegInputs')
]
test_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='Resize', scale=(2 * short_side, short_side), keep_ratio=True),
    dict(type='LoadAnnotations'),
    dict(type='PackSegInputs')
]
train_dataloader = dict(dataset=dict(pipeline=train_pipeline))
val_dataloader = dict(dataset=dict(pipeline=test_pipeline))
test_dataloader = val_dataloader
optim_wrapper = dict(
    optimizer=dict(_delete_=True, type='AdamW', lr=0.005, weight_decay=0.0001))
max_iters = 200
param_scheduler = [
    dict(type='PolyLR', eta_min=0.0, power=0.9, begin=0, end=max_iters, by_epoch=False)
]
train_cfg = dict(type='IterBasedTrainLoop', max_iters=max_iters, val_interval=max_iters)
default_hooks = dict(
    logger=dict(type='LoggerHook', interval=5, log_metric_by_epoch=False),
    checkpoint=dict(type='AtomicCheckpointHook', by_epoch=False, interval=max_iters, max_keep_ckpts=1))
