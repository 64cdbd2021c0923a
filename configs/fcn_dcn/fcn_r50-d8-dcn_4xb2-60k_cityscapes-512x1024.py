# Dense DCN-FCN baseline of the paper: 4 GPUs x 2 images, 60k iterations, 512x1024 crops.
_base_ = [
    '../_base_/models/fcn_r50-d8-dcn.py', '../_base_/datasets/cityscapes_512x1024.py',
    '../_base_/default_runtime.py', '../_base_/schedules/schedule_60k.py'
]
crop_size = (512, 1024)
data_preprocessor = dict(size=crop_size)
model = dict(data_preprocessor=data_preprocessor)
