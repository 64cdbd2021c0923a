# Ours with the sampled FCN head at sparsity loss weight 0.05 (otherwise as the w0.1 config).
_base_ = ['./sparse-fcn-sparsehead_r50-d8-dcn_4xb2-60k_cityscapes-512x1024_w0.1.py']
model = dict(sparse_loss_weight=0.05)
