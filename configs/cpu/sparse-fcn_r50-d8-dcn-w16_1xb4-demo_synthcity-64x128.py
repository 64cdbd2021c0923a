# Sparse model of `seg-sparse demo`: the dense twin
# ./fcn_r50-d8-dcn-w16_1xb4-demo_synthcity-64x128.py with the sampling of
# ./sparse-fcn_r50-d8-dcn-w16_1xb4-300i_synthcity-128x256_w0.1.py (stochastic sampler, grid
# prior 11, temperature 1 -> 0.01 over the run). The demo fine-tunes it for 30 iterations from
# the dense twin's checkpoint (`load_from`), so the run only has to learn where to sample.
# Tuned for that short run (measured on 24 synthetic scenes, seed 0, before DCN was enabled in
# the demo; with DCN and the 200-iteration twin: density 0.18, mIoU -1.7 points):
# * sparsity loss weight 1.0: with AdamW the weight only sets the balance against the task loss;
# * mask predictors at 0.2x the learning rate: AdamW moves every weight by about lr per step, and
#   the predictors' inputs are post-ReLU (>= 0), so at 1x the logits all fall together and the
#   masks collapse towards the grid prior (density 0.05-0.07 after 20 iterations). After the
#   80-iteration dense twin (val mIoU 27.9), 20 iterations at 0.12x / 0.2x / 0.3x gave mean
#   density 0.38 / 0.23 / 0.14 at val mIoU 26.5 / 27.1 / 27.4.
_base_ = ['./fcn_r50-d8-dcn-w16_1xb4-demo_synthcity-64x128.py']
model = dict(
    sparse_loss_weight=1.0,
    backbone=dict(sampler='stochastic', grid_interval=11, t0=1.0, t_final=0.01, max_iters=30))
optim_wrapper = dict(
    paramwise_cfg=dict(custom_keys={'.mask1.': dict(lr_mult=0.2, decay_mult=0.0),
                                    '.mask2.': dict(lr_mult=0.2, decay_mult=0.0)}))
max_iters = 30
param_scheduler = [
    dict(type='PolyLR', eta_min=0.0, power=0.9, begin=0, end=max_iters, by_epoch=False)
]
train_cfg = dict(type='IterBasedTrainLoop', max_iters=max_iters, val_interval=max_iters)
default_hooks = dict(checkpoint=dict(interval=max_iters))
