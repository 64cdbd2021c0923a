# ./sparse-fcn-sparsehead_r50-d8-dcn-w16_1xb4-300i_synthcity-128x256_w0.1.py at sparsity loss
# weight 1.0, for short CPU runs (the reason: ./sparse-fcn_r50-d8-dcn-w16_1xb4-300i_synthcity-
# 128x256_w1.0.py).
_base_ = ['./sparse-fcn-sparsehead_r50-d8-dcn-w16_1xb4-300i_synthcity-128x256_w0.1.py']
model = dict(sparse_loss_weight=1.0)
