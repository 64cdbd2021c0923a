# Ours at weight 0.1 without the grid prior (appendix ablation: higher run-to-run variance).
_base_ = ['./sparse-fcn_r50-d8-dcn_4xb2-60k_cityscapes-512x1024_w0.1.py']
model = dict(backbone=dict(grid_interval=None))
