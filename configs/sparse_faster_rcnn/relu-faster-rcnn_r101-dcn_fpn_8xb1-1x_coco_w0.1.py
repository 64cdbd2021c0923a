# Baseline "ReLU" gate at sparsity loss weight 0.1: deterministic gate g = 1 - exp(-relu(z)) (no
# noise, no temperature) trained with the same sparsity loss (on g); test mask 1[z > 0].
_base_ = ['./sparse-faster-rcnn_r101-dcn_fpn_8xb1-1x_coco_w0.1.py']
model = dict(sparse_loss_weight=0.1, backbone=dict(sampler='relu'))
