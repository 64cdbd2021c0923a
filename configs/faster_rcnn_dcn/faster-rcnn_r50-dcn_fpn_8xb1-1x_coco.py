# Dense baseline on ResNet-50 (otherwise ./faster-rcnn_r101-dcn_fpn_8xb1-1x_coco.py), from
# torchvision's ImageNet ResNet-50.
_base_ = ['./faster-rcnn_r101-dcn_fpn_8xb1-1x_coco.py']
model = dict(backbone=dict(
    depth=50, init_cfg=dict(type='Pretrained', checkpoint='torchvision://resnet50')))
