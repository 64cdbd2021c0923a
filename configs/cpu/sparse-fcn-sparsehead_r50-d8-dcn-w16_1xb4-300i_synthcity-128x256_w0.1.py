# Beyond the paper: ./sparse-fcn_r50-d8-dcn-w16_1xb4-300i_synthcity-128x256_w0.1.py with the FCN
# head sampled too (SparseFCNHead: every head conv computed where a mask from its input says;
# docs/sparse_head.md). Same network, data, schedule and loss weight 0.1; the head's term enters
# loss_sparse with loss_weight 1.0 next to the blocks' mean.
_base_ = ['./sparse-fcn_r50-d8-dcn-w16_1xb4-300i_synthcity-128x256_w0.1.py']
model = dict(
    decode_head=dict(
        type='SparseFCNHead',
        sampling=dict(sampler='stochastic', grid_interval=11, interp_window=7, t0=1.0,
                      t_final=0.01, max_iters=300, loss_weight=1.0)))
