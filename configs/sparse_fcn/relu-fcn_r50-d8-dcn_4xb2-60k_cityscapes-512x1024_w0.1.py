# Baseline "ReLU" gate at sparsity loss weight 0.1: deterministic gate g = 1 - exp(-relu(z))
# (no noise, no temperature) trained with the same sparsity loss (on g); tested with g itself
# (the weights it was trained with), density = fraction of positions with g > 0.
_base_ = ['./sparse-fcn_r50-d8-dcn_4xb2-60k_cityscapes-512x1024_w0.1.py']
model = dict(sparse_loss_weight=0.1, backbone=dict(sampler='relu'))
