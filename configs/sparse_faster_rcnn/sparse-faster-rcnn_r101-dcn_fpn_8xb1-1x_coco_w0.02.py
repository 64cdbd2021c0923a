# Ours at sparsity loss weight 0.02 (otherwise ./sparse-faster-rcnn_r101-dcn_fpn_8xb1-1x_coco_w0.1.py).
_base_ = ['./sparse-faster-rcnn_r101-dcn_fpn_8xb1-1x_coco_w0.1.py']
model = dict(sparse_loss_weight=0.02)
