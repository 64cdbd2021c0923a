# The paper's schedule: SGD lr 0.01, momentum 0.9, wd 1e-4, poly (power 0.9), 60k iterations.
optimizer = dict(type='SGD', lr=0.01, momentum=0.9, weight_decay=0.0001)
optim_wrapper = dict(type='OptimWrapper', optimizer=optimizer, clip_grad=None)
param_scheduler = [
    dict(type='PolyLR', eta_min=0.0, power=0.9, begin=0, end=60000, by_epoch=False)
]
train_cfg = dict(type='IterBasedTrainLoop', max_iters=60000, val_interval=6000)
val_cfg = dict(type='ValLoop')
test_cfg = dict(type='TestLoop')
# AtomicCheckpointHook: mmengine's CheckpointHook whose saves are atomic and remove old
# checkpoints only after the new one is complete (docs/checkpoints.md).
default_hooks = dict(
    timer=dict(type='IterTimerHook'),
    logger=dict(type='LoggerHook', interval=50, log_metric_by_epoch=False),
    param_scheduler=dict(type='ParamSchedulerHook'),
    checkpoint=dict(type='AtomicCheckpointHook', by_epoch=False, interval=6000, max_keep_ckpts=3),
    sampler_seed=dict(type='DistSamplerSeedHook'),
    visualization=dict(type='SegVisualizationHook'))
