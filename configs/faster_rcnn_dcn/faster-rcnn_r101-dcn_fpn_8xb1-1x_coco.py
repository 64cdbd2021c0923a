# Dense Faster R-CNN + FPN baseline of the paper: ResNet-101 with DCN v1 in conv3-conv5, COCO 2017
# at short side 1000 (long side <= 1666), 8 GPUs x 1 image, 12 epochs. Backbone: 289.5 GFLOPs
# at the paper's test size 992x1664 (`seg-sparse flops` on this config).
_base_ = [
    '../_base_/models/faster-rcnn_r101-dcn_fpn.py', '../_base_/datasets/coco_detection_1000.py',
    '../_base_/schedules/schedule_det_1x.py', '../_base_/det_runtime.py'
]
