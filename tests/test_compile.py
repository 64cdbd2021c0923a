"""torch.compile on the sampling models: no graph break in a block or the sampled head (train
and eval, dynamic shapes), compiled losses, gradients and masks equal to eager, seeded draws.

Graph breaks are counted with every size symbolic (dynamic shapes); graph capture and autograd
are checked with the ``aot_eager`` backend (Dynamo + AOTAutograd, ATen kernels: the same random
stream as eager) at static shapes, which compile several times faster; Inductor, which
generates C++ on CPU and takes minutes for a whole model here, runs on one block (slow).
"""

from __future__ import annotations

import seg_sparse  # noqa: F401, I001  # isort: skip  (mmcv.ops fallback before mmseg)
import pytest
import torch
from mmengine.logging import MMLogger
from mmengine.registry import init_default_scope
from mmseg.registry import MODELS
from sampling_reference import randomize_bn
from test_models_segmentor import H, W, samples
from test_sparse_head import varied_masks
from torch import nn

from seg_sparse.apis import compile_model
from seg_sparse.sampling import (
    SparseBottleneck,
    seeded_sampling,
    set_sampling_generator,
    sparse_blocks,
)

DCN = dict(type="DCN", deform_groups=1, fallback_on_stride=False)


@pytest.fixture(autouse=True)
def _fresh_dynamo():
    torch._dynamo.reset()
    MMLogger.get_current_instance().setLevel("WARNING")
    yield
    torch._dynamo.reset()


def block(seed: int = 0) -> SparseBottleneck:
    """A first block with stride 2, downsample and DCN, masks that vary over the image."""
    torch.manual_seed(seed)
    down = nn.Sequential(nn.Conv2d(16, 32, 1, stride=2, bias=False), nn.BatchNorm2d(32))
    blk = SparseBottleneck(16, 8, stride=2, downsample=down, with_dcn=True)
    randomize_bn(blk)
    with torch.no_grad():
        for predictor in (blk.mask1, blk.mask2):
            predictor.conv.weight.normal_(std=0.3)
            predictor.conv.bias.zero_()
        blk.conv2_offset.weight.normal_(std=0.1)
    return blk


def segmentor(sampler: str = "stochastic") -> nn.Module:
    """A one-stage ResNetV1c (3 sampling blocks with DCN, the first with stride 2 and
    downsample) at 1/16 width with a sampled FCN head: every kind of sampling layer
    (``sampler='dense'``: its dense twin)."""
    init_default_scope("mmseg")
    torch.manual_seed(0)
    bn = dict(type="BN", requires_grad=True)
    cfg = dict(
        type="SparseEncoderDecoder", sparse_loss_weight=1.0,
        data_preprocessor=dict(type="SegDataPreProcessor", mean=[0, 0, 0], std=[1, 1, 1]),
        backbone=dict(type="SparseResNetV1c", depth=50, num_stages=1, stem_channels=8,
                      base_channels=4, strides=(2,), dilations=(1,), out_indices=(0,),
                      dcn=DCN, stage_with_dcn=(True,), norm_cfg=bn, sampler=sampler),
        decode_head=dict(type="SparseFCNHead", in_channels=16, in_index=0, channels=8,
                         num_convs=1, concat_input=True, num_classes=19, norm_cfg=bn,
                         sampling=dict(sampler=sampler)),
        train_cfg=dict(), test_cfg=dict(mode="whole"))
    model = MODELS.build(cfg)
    model.init_weights()
    if sampler != "dense":
        varied_masks(model)
    return model


def graph_breaks(module: nn.Module, *args) -> int:
    """Graph breaks of ``module(*args)`` with every size symbolic (dynamic shapes)."""
    with torch._dynamo.config.patch(assume_static_by_default=False):
        explanation = torch._dynamo.explain(module)(*args)
    assert explanation.graph_count >= 1
    return explanation.graph_break_count


@pytest.mark.slow  # tracing and compiling: 15-40 s on 2 cores
@pytest.mark.parametrize("training", [True, False], ids=["train", "eval"])
def test_a_block_and_the_sampled_head_trace_without_graph_breaks(training):
    blk = block().train(training)
    assert graph_breaks(blk, torch.randn(2, 16, 13, 17)) == 0
    head = segmentor().decode_head.train(training)
    assert graph_breaks(head, [torch.randn(2, 16, 9, 11)]) == 0


@pytest.mark.slow
@pytest.mark.parametrize("training", [True, False], ids=["train", "eval"])
def test_the_backbones_trace_without_graph_breaks(training):
    model = segmentor().train(training)
    assert graph_breaks(model.backbone, torch.randn(1, 3, 40, 56)) == 0
    init_default_scope("mmdet")
    from mmdet.registry import MODELS as DET_MODELS

    det = DET_MODELS.build(dict(
        type="SparseDetResNet", depth=50, num_stages=1, base_channels=4, strides=(2,),
        dilations=(1,), out_indices=(0,), dcn=DCN, stage_with_dcn=(True,))).train(
        training)
    assert graph_breaks(det, torch.randn(1, 3, 40, 56)) == 0


def _loss_and_grads(model: nn.Module, seed: int) -> tuple[dict, dict]:
    torch.manual_seed(seed)
    inputs = torch.randn(2, 3, H, W)
    model.zero_grad(set_to_none=True)
    losses = model.loss(inputs, samples(2))
    total, _ = model.parse_losses(losses)
    total.backward()
    grads = {n: p.grad.clone() for n, p in model.named_parameters() if p.grad is not None}
    return {k: v.detach().clone() for k, v in losses.items() if "loss" in k}, grads


@pytest.mark.slow  # tracing and compiling: 15-40 s on 2 cores
def test_compiled_training_losses_and_gradients_equal_eager():
    eager, compiled = segmentor().train(), segmentor().train()
    assert compile_model(compiled, backend="aot_eager") == ["backbone",
                                                                         "decode_head"]
    for seed in (0, 1):  # the second step: compiled graphs reused
        ref_losses, ref_grads = _loss_and_grads(eager, seed)
        losses, grads = _loss_and_grads(compiled, seed)
        assert losses.keys() == ref_losses.keys() and "loss_sparse" in losses
        for key, value in ref_losses.items():
            torch.testing.assert_close(losses[key], value, rtol=1e-5, atol=1e-6)
        assert grads.keys() == ref_grads.keys()
        assert any("mask2" in n for n in grads) and any("interp1.scale" in n for n in grads)
        for name, value in ref_grads.items():
            torch.testing.assert_close(grads[name], value, rtol=1e-4, atol=1e-6, msg=name)
    # the sparsity loss read the compiled forward's records
    assert all(b.last_sampling.prob1.requires_grad for _, b in sparse_blocks(compiled.backbone))


@pytest.mark.slow  # tracing and compiling: 15-40 s on 2 cores
def test_compiled_masked_inference_equals_eager_and_seeded_runs_repeat():
    eager, compiled = segmentor().eval(), segmentor().eval()
    compile_model(compiled, backend="aot_eager")
    x = torch.randn(2, 3, H, W)
    metas = [dict(img_shape=(H, W), ori_shape=(H, W))] * 2

    def run(model: nn.Module, seed: int) -> tuple[torch.Tensor, list[torch.Tensor]]:
        generator = torch.Generator().manual_seed(seed)
        set_sampling_generator(model, generator)
        with torch.no_grad(), seeded_sampling(model):
            logits = model.encode_decode(x, metas)
        masks = [b.last_sampling.mask2 for _, b in sparse_blocks(model.backbone)]
        set_sampling_generator(model, None)
        return logits, masks + list(model.decode_head.sampling.last_sampling.masks), generator

    ref_logits, ref_masks, ref_gen = run(eager, 3)
    logits, masks, gen = run(compiled, 3)
    torch.testing.assert_close(logits, ref_logits, rtol=1e-5, atol=1e-5)
    assert all(torch.equal(a, b) for a, b in zip(masks, ref_masks))
    assert torch.equal(gen.get_state(), ref_gen.get_state())  # advanced as in eager mode
    other = run(compiled, 4)[1]
    assert not all(torch.equal(a, b) for a, b in zip(other, ref_masks))


@pytest.mark.slow  # tracing and compiling: 15-40 s on 2 cores
def test_a_compiled_layer_with_a_generator_outside_seeded_sampling_draws_from_it():
    """Outside seeded_sampling the draw runs eagerly (a graph break per mask), so the seed
    is still honoured; inside it the block traces whole."""
    blk = block().eval()
    x = torch.randn(2, 16, 13, 17)
    set_sampling_generator(blk, torch.Generator().manual_seed(5))
    with torch.no_grad():
        assert torch._dynamo.explain(blk)(x).graph_break_count > 0
        with seeded_sampling(blk):
            assert torch._dynamo.explain(blk)(x).graph_break_count == 0
    eager_blk = block().eval()
    set_sampling_generator(eager_blk, torch.Generator().manual_seed(5))
    compiled = torch.compile(blk, backend="aot_eager")
    set_sampling_generator(blk, torch.Generator().manual_seed(5))
    with torch.no_grad():
        torch.testing.assert_close(compiled(x), eager_blk(x))
    assert torch.equal(blk.last_sampling.mask1, eager_blk.last_sampling.mask1)


def test_seeded_sampling_refuses_two_generators_and_restores_the_global_rng():
    blk = block()
    other = block()
    model = nn.Sequential(blk, other)
    set_sampling_generator(blk, torch.Generator().manual_seed(0))
    set_sampling_generator(other, torch.Generator().manual_seed(1))
    with pytest.raises(ValueError, match="one generator"):
        with seeded_sampling(model):
            pass
    set_sampling_generator(other, None)
    torch.manual_seed(123)
    expected = torch.rand(3)
    torch.manual_seed(123)
    with seeded_sampling(model):
        torch.rand(5)
    assert torch.equal(torch.rand(3), expected)


@pytest.mark.slow
def test_inductor_compiled_block_equals_eager_and_seeded_runs_repeat():
    """Inductor's generated code (inference; training is covered by aot_eager above, an
    Inductor training graph takes minutes to build on CPU): equal to eager when it draws with
    torch's kernels (``fallback_random``), and with its default Philox draws a seed repeats."""
    import torch._inductor.config as inductor_config

    eager, compiled_blk = block().eval(), block().eval()
    compiled = torch.compile(compiled_blk)
    x = torch.randn(2, 16, 13, 17)
    outputs = []
    with torch.no_grad(), inductor_config.patch(fallback_random=True):
        for model in (eager, compiled):
            torch.manual_seed(0)
            outputs.append(model(x))
    torch.testing.assert_close(outputs[1], outputs[0], rtol=1e-5, atol=1e-5)
    assert torch.equal(compiled_blk.last_sampling.mask1, eager.last_sampling.mask1)
    torch._dynamo.reset()
    compiled = torch.compile(compiled_blk)
    runs = []
    for _ in range(2):
        torch.manual_seed(7)
        with torch.no_grad():
            compiled(x)
        runs.append(compiled_blk.last_sampling.mask2)
    assert torch.equal(*runs) and 0 < float(runs[0].mean()) < 1


def test_compile_switches_reach_mmengine_and_refuse_unknown_backends(tmp_path, capsys):
    from cli_support import SPARSE_CPU_CONFIG
    from cli_support import seg_sparse as run_cli
    from mmengine.config import Config

    from seg_sparse.apis import enable_compiled_training

    cfg = Config(dict(model=dict()))
    enable_compiled_training(cfg)
    assert cfg.compile is True  # mmengine's Runner then compiles train_step
    cfg = Config(dict(compile=dict(mode="max-autotune")))
    enable_compiled_training(cfg, {"backend": "aot_eager"})
    assert cfg.compile == dict(mode="max-autotune")  # the config's own options win
    assert run_cli("train", SPARSE_CPU_CONFIG, "--work-dir", str(tmp_path), "--compile",
                      "nosuch") == 2
    assert "unknown torch.compile backend 'nosuch'" in capsys.readouterr().err
    assert run_cli("bench", SPARSE_CPU_CONFIG, "--train-only", "--compile", "nosuch") == 2
    assert "unknown torch.compile backend 'nosuch'" in capsys.readouterr().err
