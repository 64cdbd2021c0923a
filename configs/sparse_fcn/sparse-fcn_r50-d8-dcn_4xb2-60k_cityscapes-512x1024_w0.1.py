# Ours (stochastic sampling and interpolation), sparsity loss weight 0.1, grid prior k=11,
# T_final 0.01: the sparse twin of ../fcn_dcn/fcn_r50-d8-dcn_4xb2-60k_cityscapes-512x1024.py
# (4 GPUs x 2 images, 60k iterations, 512x1024 crops). The other configs of this folder change
# one thing each.
_base_ = [
    '../_base_/models/sparse-fcn_r50-d8-dcn.py', '../_base_/datasets/cityscapes_512x1024.py',
    '../_base_/default_runtime.py', '../_base_/schedules/schedule_60k.py'
]
crop_size = (512, 1024)
data_preprocessor = dict(size=crop_size)
model = dict(data_preprocessor=data_preprocessor, sparse_loss_weight=0.1)
