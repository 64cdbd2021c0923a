# Ours at sparsity loss weight 0.1 with mmseg's standard 64-channel ResNetV1c stem instead of
# the paper's 128-channel one: the sparse twin of
# ../fcn_dcn/fcn_r50-d8-dcn-stem64_4xb2-60k_cityscapes-512x1024.py, for mmseg's ImageNet
# `resnet50_v1c` checkpoints (docs/configs.md).
_base_ = ['./sparse-fcn_r50-d8-dcn_4xb2-60k_cityscapes-512x1024_w0.1.py']
model = dict(backbone=dict(stem_channels=64))
