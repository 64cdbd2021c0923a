# Baseline "Determ Gumbel-Softmax" at sparsity loss weight 0.2: trained exactly as ours, tested
# with the deterministic mask p >= 0.5 instead of a Bernoulli(p) draw.
_base_ = ['./sparse-faster-rcnn_r101-dcn_fpn_8xb1-1x_coco_w0.1.py']
model = dict(sparse_loss_weight=0.2, backbone=dict(sampler='deterministic'))
