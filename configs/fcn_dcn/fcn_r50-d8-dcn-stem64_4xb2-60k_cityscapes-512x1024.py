# The dense DCN-FCN baseline with mmseg's standard 64-channel ResNetV1c stem (3->32->32->64)
# instead of the paper's 128-channel one: fits mmseg's ImageNet `resnet50_v1c` checkpoints
# (docs/configs.md). 873.96 backbone GFLOPs at 1024x2048 (the paper's stem: 920.6).
_base_ = ['./fcn_r50-d8-dcn_4xb2-60k_cityscapes-512x1024.py']
model = dict(backbone=dict(stem_channels=64))
