# Beyond the paper: the sparse segmentation model of ./sparse-fcn_r50-d8-dcn.py whose FCN decode
# head samples too. Every conv of the head (both 3x3 convs and the concat_input conv) gets a
# mask predicted from its own input, with the backbone's sampler, grid prior, Gaussian
# interpolation and temperature schedule; the 1x1 classifier runs where its input was computed
# and its logits are interpolated. The head's term enters loss_sparse next to the blocks' mean
# with weight loss_weight (its convs weighted by their cost shares): docs/sparse_head.md.
# The head keeps FCNHead's parameter names, so checkpoints of the dense-head model load.
_base_ = ['./sparse-fcn_r50-d8-dcn.py']
model = dict(
    decode_head=dict(
        type='SparseFCNHead',
        sampling=dict(
            sampler='stochastic',
            grid_interval=11,
            interp_window=7,
            t0=1.0,
            t_final=0.01,
            max_iters=60000,  # SparseTemperatureHook re-targets it to train_cfg.max_iters
            loss_weight=1.0)))
