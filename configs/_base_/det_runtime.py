# Runtime of every seg-sparse detection config (mmdet 3.x style): the segmentation runtime
# (custom_imports of seg_sparse; SafeCheckpointHook, SparseTemperatureHook and SparseFlopsHook in
# custom_hooks; env_cfg) in mmdet's scope, with mmdet's default hooks and visualizer; checkpoints
# are written atomically (AtomicCheckpointHook, docs/checkpoints.md).
_base_ = ['./default_runtime.py']
default_scope = 'mmdet'
default_hooks = dict(
    timer=dict(type='IterTimerHook'),
    logger=dict(type='LoggerHook', interval=50),
    param_scheduler=dict(type='ParamSchedulerHook'),
    checkpoint=dict(type='AtomicCheckpointHook', interval=1),
    sampler_seed=dict(type='DistSamplerSeedHook'),
    visualization=dict(type='DetVisualizationHook'))
visualizer = dict(_delete_=True, type='DetLocalVisualizer',
                  vis_backends=[dict(type='LocalVisBackend')], name='visualizer')
# detection inputs change size from image to image: cudnn's per-shape autotuning would rerun
env_cfg = dict(cudnn_benchmark=False)
log_processor = dict(type='LogProcessor', window_size=50, by_epoch=True)
