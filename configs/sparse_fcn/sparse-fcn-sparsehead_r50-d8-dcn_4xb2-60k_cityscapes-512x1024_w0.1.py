# Beyond the paper: ours (stochastic sampling and interpolation) with the FCN head sampled too
# (SparseFCNHead, docs/sparse_head.md), sparsity loss weight 0.1 (the paper's Cityscapes weights
# are 0.05 / 0.1 / 0.2 / 0.3), grid prior k=11, T_final 0.01; otherwise
# ./sparse-fcn_r50-d8-dcn_4xb2-60k_cityscapes-512x1024_w0.1.py (4 GPUs x 2 images, 60k iterations).
_base_ = [
    '../_base_/models/sparse-fcn-sparsehead_r50-d8-dcn.py',
    '../_base_/datasets/cityscapes_512x1024.py', '../_base_/default_runtime.py',
    '../_base_/schedules/schedule_60k.py'
]
crop_size = (512, 1024)
data_preprocessor = dict(size=crop_size)
model = dict(data_preprocessor=data_preprocessor, sparse_loss_weight=0.1)
