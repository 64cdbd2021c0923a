# Sparse twin of ./fcn_r50-d8-dcn-w16_1xb4-300i_synthcity-128x256.py (same network, data and
# schedule; only the sampling differs): stochastic sampling, grid prior k=11, sparsity loss
# weight 0.1. SparseTemperatureHook anneals the temperature from 1 to 0.01 over the run's 300
# iterations (it follows train_cfg.max_iters, so shorter runs anneal faster). The paper's weight
# is calibrated for 60k iterations: in a few hundred the masks stay almost dense (measured: mean
# density 0.95 after 100 iterations); short CPU runs use the w1.0 variant.
_base_ = ['./fcn_r50-d8-dcn-w16_1xb4-300i_synthcity-128x256.py']
model = dict(
    sparse_loss_weight=0.1,
    backbone=dict(sampler='stochastic', grid_interval=11, t0=1.0, t_final=0.01, max_iters=300))
