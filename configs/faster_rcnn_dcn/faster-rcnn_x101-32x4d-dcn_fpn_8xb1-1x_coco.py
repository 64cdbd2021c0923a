# Dense baseline on ResNeXt-101 32x4d (otherwise ./faster-rcnn_r101-dcn_fpn_8xb1-1x_coco.py),
# from mmdet's ImageNet ResNeXt-101 32x4d weights.
_base_ = ['./faster-rcnn_r101-dcn_fpn_8xb1-1x_coco.py']
model = dict(backbone=dict(
    type='SparseDetResNeXt', depth=101, groups=32, base_width=4,
    init_cfg=dict(type='Pretrained', checkpoint='open-mmlab://resnext101_32x4d')))
