# Ours at weight 0.1 with final Gumbel temperature 0.005 (default 0.01; appendix ablation).
_base_ = ['./sparse-fcn_r50-d8-dcn_4xb2-60k_cityscapes-512x1024_w0.1.py']
model = dict(backbone=dict(t_final=0.005))
