# Ours on ResNet-50 at sparsity loss weight 0.1 (other weights: --cfg-options
# model.sparse_loss_weight=W); dense twin: ../faster_rcnn_dcn/faster-rcnn_r50-dcn_fpn_8xb1-1x_coco.py
_base_ = ['./sparse-faster-rcnn_r101-dcn_fpn_8xb1-1x_coco_w0.1.py']
model = dict(backbone=dict(
    depth=50, init_cfg=dict(type='Pretrained', checkpoint='torchvision://resnet50')))
