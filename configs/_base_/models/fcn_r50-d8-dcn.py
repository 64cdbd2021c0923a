# The paper's dense segmentation baseline: dilated ResNetV1c-50 (strides 1,2,1,1; dilations
# 1,1,2,4) with the paper's 128-channel deep stem (3->64->64->128, so layer1 takes 128 channels;
# mmseg's standard ResNetV1c stem is 3->32->32->64), DCN v1 replacing every 3x3 conv of stages
# conv3-conv5, FCN head, SyncBN. 920.6 backbone GFLOPs at 1024x2048, the paper's figure.
# `*-stem64_*` configs use mmseg's 64-channel stem; docs/configs.md says which weights fit which.
# Built from the same sparse block as the sampling models with the 'dense' sampler (no mask
# predictors, no interpolation), so every comparison differs only in sampling. Parameter names
# equal mmseg's ResNetV1c; the DCN offsets are predicted from the block input (`conv2_offset`),
# as in the sparse blocks, instead of mmseg's offsets from conv1's output.
# ImageNet weights are not downloaded: pass a checkpoint with the same stem (docs/configs.md) with
#   --cfg-options model.backbone.init_cfg.type=Pretrained model.backbone.init_cfg.checkpoint=PATH
norm_cfg = dict(type='SyncBN', requires_grad=True)
data_preprocessor = dict(
    type='SegDataPreProcessor',
    mean=[123.675, 116.28, 103.53],
    std=[58.395, 57.12, 57.375],
    bgr_to_rgb=True,
    pad_val=0,
    seg_pad_val=255)
model = dict(
    type='SparseEncoderDecoder',
    sparse_loss_weight=0.0,
    data_preprocessor=data_preprocessor,
    pretrained=None,
    backbone=dict(
        type='SparseResNetV1c',
        sampler='dense',
        depth=50,
        stem_channels=128,  # the paper's deep stem; 64 is mmseg's (see the *-stem64_* configs)
        num_stages=4,
        out_indices=(0, 1, 2, 3),
        dilations=(1, 1, 2, 4),
        strides=(1, 2, 1, 1),
        norm_cfg=norm_cfg,
        norm_eval=False,
        style='pytorch',
        contract_dilation=True,
        dcn=dict(type='DCN', deform_groups=1, fallback_on_stride=False),
        stage_with_dcn=(False, True, True, True)),
    decode_head=dict(
        type='FCNHead',
        in_channels=2048,
        in_index=3,
        channels=512,
        num_convs=2,
        concat_input=True,
        dropout_ratio=0.1,
        num_classes=19,
        norm_cfg=norm_cfg,
        align_corners=False,
        loss_decode=dict(type='CrossEntropyLoss', use_sigmoid=False, loss_weight=1.0)),
    auxiliary_head=dict(
        type='FCNHead',
        in_channels=1024,
        in_index=2,
        channels=256,
        num_convs=1,
        concat_input=False,
        dropout_ratio=0.1,
        num_classes=19,
        norm_cfg=norm_cfg,
        align_corners=False,
        loss_decode=dict(type='CrossEntropyLoss', use_sigmoid=False, loss_weight=0.4)),
    train_cfg=dict(),
    test_cfg=dict(mode='whole'))
