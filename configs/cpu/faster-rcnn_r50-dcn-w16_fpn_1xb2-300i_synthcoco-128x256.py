# Small CPU member of the detection family: the paper's detector (Faster R-CNN + FPN, ResNet-50
# with DCN in conv3-conv5, offsets from the block input) at 1/4 width (base_channels=16, FPN and
# heads narrowed to match) on synthetic street scenes at 128x256, batch 2, 300 iterations, one
# process. Used by tests and quick experiments. Trained from scratch (no ImageNet weights fit
# its width), so nothing is frozen: every stage trains and BN uses batch statistics.
_base_ = [
    '../_base_/models/faster-rcnn_r101-dcn_fpn.py', '../_base_/datasets/synthcoco_detection.py',
    '../_base_/schedules/schedule_det_1x.py', '../_base_/det_runtime.py'
]
model = dict(
    backbone=dict(depth=50, base_channels=16, frozen_stages=-1, norm_eval=False, init_cfg=None),
    neck=dict(in_channels=[64, 128, 256, 512], out_channels=64),
    rpn_head=dict(in_channels=64, feat_channels=64),
    roi_head=dict(
        bbox_roi_extractor=dict(out_channels=64),
        bbox_head=dict(in_channels=64, fc_out_channels=128, num_classes=5)))
max_iters = 300
train_cfg = dict(_delete_=True, type='IterBasedTrainLoop', max_iters=max_iters,
                 val_interval=max_iters)
param_scheduler = [
    dict(type='LinearLR', start_factor=1.0 / 3, by_epoch=False, begin=0, end=50),
    dict(type='MultiStepLR', begin=0, end=max_iters, by_epoch=False,
         milestones=[200, 275], gamma=0.1)
]
optim_wrapper = dict(optimizer=dict(lr=0.02))
default_hooks = dict(
    logger=dict(type='LoggerHook', interval=10, log_metric_by_epoch=False),
    checkpoint=dict(type='AtomicCheckpointHook', by_epoch=False, interval=max_iters,
                    max_keep_ckpts=1))
log_processor = dict(by_epoch=False)
