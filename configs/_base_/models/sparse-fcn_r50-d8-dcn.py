# The paper's sparse segmentation model: the dense DCN-FCN of ./fcn_r50-d8-dcn.py whose every
# bottleneck samples conv1/conv2 outputs with stochastic masks (Gumbel-sigmoid in training,
# Bernoulli(p) at test), a grid prior (interval 11) and Gaussian interpolation; sparsity loss
# weight 0.1; temperature annealed from 1 to 0.01 over training by SparseTemperatureHook
# (in default_runtime.py's custom_hooks).
_base_ = ['./fcn_r50-d8-dcn.py']
model = dict(
    sparse_loss_weight=0.1,
    backbone=dict(
        sampler='stochastic',  # 'deterministic' (Determ Gumbel-Softmax), 'relu', 'dense'
        grid_interval=11,  # None: no grid prior
        interp_window=7,
        t0=1.0,
        t_final=0.01,
        # SparseTemperatureHook re-targets this to train_cfg.max_iters.
        max_iters=60000))
