# Ours (stochastic sampling and interpolation), sparsity loss weight 0.1, grid prior k=11,
# T_final 0.01: the sparse twin of ../faster_rcnn_dcn/faster-rcnn_r101-dcn_fpn_8xb1-1x_coco.py
# (COCO at short side 1000, 8 GPUs x 1 image, 12 epochs). The other configs of this folder change
# one thing each.
_base_ = [
    '../_base_/models/sparse-faster-rcnn_r101-dcn_fpn.py',
    '../_base_/datasets/coco_detection_1000.py', '../_base_/schedules/schedule_det_1x.py',
    '../_base_/det_runtime.py'
]
model = dict(sparse_loss_weight=0.1)
