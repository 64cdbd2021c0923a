# "Uniform sampling" baseline at short side 1000: exactly the dense baseline; named so the
# family reads 1000 / 800 / 600 / 500 (see ./faster-rcnn_r101-dcn_fpn_8xb1-1x_coco-uniform800.py
# for how the others resize).
_base_ = ['./faster-rcnn_r101-dcn_fpn_8xb1-1x_coco.py']
