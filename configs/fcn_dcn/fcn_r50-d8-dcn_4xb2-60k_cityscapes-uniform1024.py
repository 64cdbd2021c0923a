# "Uniform sampling" baseline at short side 1024: Cityscapes' full resolution with 512x1024
# crops, i.e. exactly the dense baseline; named so the family reads 1024 / 896 / 736 / 512
# (see ./fcn_r50-d8-dcn_4xb2-60k_cityscapes-uniform896.py for how the others resize).
_base_ = ['./fcn_r50-d8-dcn_4xb2-60k_cityscapes-512x1024.py']
