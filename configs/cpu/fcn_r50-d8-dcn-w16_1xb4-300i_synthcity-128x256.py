# Small CPU member of the DCN-FCN family: same architecture (dilated ResNetV1c-50 with DCN in
# conv3-conv5, FCN head) at 1/4 width (base_channels=16), 128x256 crops of 256x512 synthetic
# scenes, 300 iterations, batch 4, on one process. Used by tests and the demo.
_base_ = [
    '../_base_/models/fcn_r50-d8-dcn.py', '../_base_/datasets/synthcity_256x512.py',
    '../_base_/default_runtime.py', '../_base_/schedules/schedule_60k.py'
]
crop_size = (128, 256)
norm_cfg = dict(type='SyncBN', requires_grad=True)
model = dict(
    data_preprocessor=dict(size=crop_size),
    backbone=dict(stem_channels=16, base_channels=16),
    decode_head=dict(in_channels=512, channels=64),
    auxiliary_head=dict(in_channels=256, channels=32))
max_iters = 300
optimizer = dict(type='SGD', lr=0.01, momentum=0.9, weight_decay=0.0001)
optim_wrapper = dict(type='OptimWrapper', optimizer=optimizer, clip_grad=None)
param_scheduler = [
    dict(type='PolyLR', eta_min=0.0, power=0.9, begin=0, end=max_iters, by_epoch=False)
]
train_cfg = dict(type='IterBasedTrainLoop', max_iters=max_iters, val_interval=max_iters)
default_hooks = dict(
    logger=dict(type='LoggerHook', interval=10, log_metric_by_epoch=False),
    checkpoint=dict(type='AtomicCheckpointHook', by_epoch=False, interval=max_iters, max_keep_ckpts=1))
env_cfg = dict(cudnn_benchmark=False)
