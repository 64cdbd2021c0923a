# Sparse twin of ./faster-rcnn_r50-dcn-w16_fpn_1xb2-300i_synthcoco-128x256.py: stochastic
# sampling masks in every backbone bottleneck, grid prior 11, Gaussian interpolation, sparsity
# loss weight 0.1, temperature 1 -> 0.01 over the run.
_base_ = ['./faster-rcnn_r50-dcn-w16_fpn_1xb2-300i_synthcoco-128x256.py']
model = dict(
    sparse_loss_weight=0.1,
    backbone=dict(sampler='stochastic', grid_interval=11, interp_window=7, t0=1.0,
                  t_final=0.01, max_iters=300))
