# Ours on ResNeXt-101 32x4d at sparsity loss weight 0.1 (other weights: --cfg-options
# model.sparse_loss_weight=W); dense twin:
# ../faster_rcnn_dcn/faster-rcnn_x101-32x4d-dcn_fpn_8xb1-1x_coco.py
_base_ = ['./sparse-faster-rcnn_r101-dcn_fpn_8xb1-1x_coco_w0.1.py']
model = dict(backbone=dict(
    type='SparseDetResNeXt', depth=101, groups=32, base_width=4,
    init_cfg=dict(type='Pretrained', checkpoint='open-mmlab://resnext101_32x4d')))
