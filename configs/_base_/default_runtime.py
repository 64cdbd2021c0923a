# Runtime shared by every seg-sparse config (mmseg 1.x style).
custom_imports = dict(imports=['seg_sparse'], allow_failed_imports=False)
default_scope = 'mmseg'
env_cfg = dict(
    cudnn_benchmark=True,
    mp_cfg=dict(mp_start_method='fork', opencv_num_threads=0),
    # `seg-sparse train --launcher pytorch` switches to gloo (and a CPU-capable DDP wrapper)
    # when CUDA is unavailable; mmseg's own tools/train.py needs GPUs for multi-process runs.
    dist_cfg=dict(backend='nccl'),
)
vis_backends = [dict(type='LocalVisBackend')]
visualizer = dict(type='SegLocalVisualizer', vis_backends=vis_backends, name='visualizer')
log_processor = dict(by_epoch=False)
log_level = 'INFO'
load_from = None
resume = False
# SafeCheckpointHook: checkpoints hold only plain data (they load under weights_only=True).
# SparseTemperatureHook: anneals the Gumbel temperature from the Runner's iteration (no-op for
# dense models). SparseFlopsHook: gives SparseIoUMetric the model so it reports GFLOPs.
# A config that redefines custom_hooks replaces this list: keep all three.
custom_hooks = [
    dict(type='SafeCheckpointHook'),
    dict(type='SparseTemperatureHook'),
    dict(type='SparseFlopsHook'),
]
