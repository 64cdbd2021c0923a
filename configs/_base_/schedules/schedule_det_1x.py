# The paper's detection schedule: 12 epochs, SGD lr 0.01 (8 GPUs x 1 image), momentum 0.9,
# weight decay 1e-4, linear warmup over 500 iterations from lr / 3, lr divided by 10 after
# epochs 8 and 11, gradients clipped to norm 35 (the authors' configs).
train_cfg = dict(type='EpochBasedTrainLoop', max_epochs=12, val_interval=1)
val_cfg = dict(type='ValLoop')
test_cfg = dict(type='TestLoop')
param_scheduler = [
    dict(type='LinearLR', start_factor=1.0 / 3, by_epoch=False, begin=0, end=500),
    dict(type='MultiStepLR', begin=0, end=12, by_epoch=True, milestones=[8, 11], gamma=0.1)
]
optim_wrapper = dict(
    type='OptimWrapper',
    optimizer=dict(type='SGD', lr=0.01, momentum=0.9, weight_decay=0.0001),
    clip_grad=dict(max_norm=35, norm_type=2))
# lr 0.01 is for 8 images per iteration: `--auto-scale-lr` of mmdet's tools/train.py (or
# auto_scale_lr.enable=True) scales it linearly for other batch sizes.
auto_scale_lr = dict(enable=False, base_batch_size=8)
