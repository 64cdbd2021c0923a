# Runtime shared by every seg-sparse detection config (mmdet 3.x style).
custom_imports = dict(imports=['seg_sparse'], allow_failed_imports=False)
default_scope = 'mmdet'
default_hooks = dict(
    timer=dict(type='IterTimerHook'),
    logger=dict(type='LoggerHook', interval=50),
    param_scheduler=dict(type='ParamSchedulerHook'),
    checkpoint=dict(type='CheckpointHook', interval=1),
    sampler_seed=dict(type='DistSamplerSeedHook'),
    visualization=dict(type='DetVisualizationHook'))
env_cfg = dict(
    cudnn_benchmark=False,
    mp_cfg=dict(mp_start_method='fork', opencv_num_threads=0),
    # `seg-sparse train --launcher pytorch` switches to gloo (and a CPU-capable DDP wrapper)
    # when CUDA is unavailable.
    dist_cfg=dict(backend='nccl'),
)
vis_backends = [dict(type='LocalVisBackend')]
visualizer = dict(type='DetLocalVisualizer', vis_backends=vis_backends, name='visualizer')
log_processor = dict(type='LogProcessor', window_size=50, by_epoch=True)
log_level = 'INFO'
load_from = None
resume = False
# SafeCheckpointHook: checkpoints hold only plain data (they load under weights_only=True).
# SparseTemperatureHook: anneals the Gumbel temperature from the Runner's iteration (no-op for
# dense models). SparseFlopsHook: gives SparseCocoMetric the model so it reports GFLOPs.
# A config that redefines custom_hooks replaces this list: keep all three.
custom_hooks = [
    dict(type='SafeCheckpointHook'),
    dict(type='SparseTemperatureHook'),
    dict(type='SparseFlopsHook'),
]
