# The paper's sparse detector: the dense Faster R-CNN of ./faster-rcnn_r101-dcn_fpn.py whose
# every backbone bottleneck samples conv1/conv2 outputs with stochastic masks (Gumbel-sigmoid in
# training, Bernoulli(p) at test), a grid prior (interval 11) and Gaussian interpolation (7x7
# window); sparsity loss weight 0.1; temperature annealed from 1 to 0.01 over training by
# SparseTemperatureHook (in det_runtime.py's custom_hooks).
_base_ = ['./faster-rcnn_r101-dcn_fpn.py']
model = dict(
    sparse_loss_weight=0.1,
    backbone=dict(
        sampler='stochastic',  # 'deterministic' (Determ Gumbel-Softmax), 'relu', 'dense'
        grid_interval=11,  # None: no grid prior
        interp_window=7,
        t0=1.0,
        t_final=0.01,
        # SparseTemperatureHook re-targets this to the training loop's iteration count.
        max_iters=180000))
