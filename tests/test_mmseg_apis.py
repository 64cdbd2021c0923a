"""mmseg's and mmdet's own inference APIs on seg-sparse configs, and the masks in predictions.

* the interpreter-start hook (``seg_sparse_mmcv_hook.pth``): a fresh interpreter that imports
  mmseg or mmdet before anything of seg_sparse gets the pure-torch ``mmcv.ops``;
* ``init_model`` / ``inference_model`` / ``show_result_pyplot`` / ``MMSegInferencer`` and
  ``init_detector`` / ``inference_detector`` / ``DetInferencer`` on shipped configs;
* every shipped config's test pipeline after mmseg's / mmdet's inference surgery;
* ``test_cfg.return_sampling_masks``, :func:`seg_sparse.apis.inference_with_masks` and the
  Inferencers that return densities and masks.
"""

from __future__ import annotations

import seg_sparse  # noqa: F401, I001  # isort: skip  (mmcv.ops fallback before mmseg)
import copy
import json
import os
import shutil
import subprocess
import sys
import textwrap
import types
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch
from mmengine.config import Config
from test_models_segmentor import H, W, randomize_masks, samples, tiny_segmentor
from test_sparse_head import segmentor as sparse_head_segmentor

REPO = Path(__file__).resolve().parents[1]
CONFIGS = REPO / "configs"
SEG_CONFIG = CONFIGS / "cpu/sparse-fcn_r50-d8-dcn-w16_1xb4-demo_synthcity-64x128.py"
HEAD_CONFIG = CONFIGS / "cpu/sparse-fcn-sparsehead_r50-d8-dcn-w16_1xb4-demo_synthcity-64x128.py"
DET_CONFIG = CONFIGS / "cpu/sparse-faster-rcnn_r50-dcn-w16_fpn_1xb2-300i_synthcoco-128x256_w0.1.py"
HOOK_PTH = REPO / "seg_sparse_mmcv_hook.pth"
HEAD_CONVS = ["convs.0", "convs.1", "conv_cat"]  # HEAD_CONFIG's sampled head convs


def _run(script: str, tmp_path: Path, timeout: int = 600) -> dict:
    """Run ``script`` in a fresh interpreter whose site directory holds the start hook's .pth
    (processed by ``site.addsitedir`` exactly as at interpreter start); returns the JSON it
    prints on its last line."""
    site_dir = tmp_path / "site"
    site_dir.mkdir(exist_ok=True)
    shutil.copy(HOOK_PTH, site_dir)
    prologue = f"import site; site.addsitedir({str(site_dir)!r})\n"
    env = {**os.environ, "PYTHONPATH": str(REPO), "MPLBACKEND": "Agg"}
    proc = subprocess.run([sys.executable, "-c", prologue + textwrap.dedent(script)],
                          cwd=tmp_path, env=env, capture_output=True, text=True,
                          timeout=timeout)
    assert proc.returncode == 0, proc.stderr[-4000:]
    return json.loads(proc.stdout.strip().splitlines()[-1])


def _images(folder: Path, n: int = 2, size: tuple[int, int] = (64, 128)) -> list[Path]:
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for i in range(n):
        path = folder / f"scene{i}.png"
        cv2.imwrite(str(path), np.random.RandomState(i).randint(0, 255, (*size, 3), np.uint8))
        paths.append(path)
    return paths


def test_start_hook_imports_nothing_at_interpreter_start():
    code = ("import seg_sparse_mmcv_hook as h; h.install(); h.install(); import sys; "
            "print(sorted(m for m in ('torch', 'seg_sparse', 'mmcv', 'mmseg', 'mmdet', 'typing')"
            " if m in sys.modules), sum(isinstance(f, h.MmcvOpsHook) for f in sys.meta_path))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         env={**os.environ, "PYTHONPATH": str(REPO)}, check=True).stdout
    assert out.split() == ["[]", "1"]
    assert HOOK_PTH.read_text() == "import seg_sparse_mmcv_hook; seg_sparse_mmcv_hook.install()\n"


@pytest.mark.slow
@pytest.mark.parametrize("first", [
    "from mmcv.ops import nms, point_sample",  # mmcv.ops directly: nothing half-imported
    "import mmengine; import mmseg.models",  # mmengine loaded before mmseg
    "import seg_sparse; from mmseg.apis import init_model",  # seg_sparse's own hook acts
])
def test_any_import_order_gets_the_fallback_and_the_registrations(first: str, tmp_path: Path):
    out = _run(f"""
        import json, sys
        {first}
        import mmcv.ops, seg_sparse, seg_sparse_mmcv_hook as hook
        from mmseg.registry import MODELS
        from seg_sparse.compat import is_fallback_installed
        print(json.dumps([is_fallback_installed(), sys.modules['mmcv.ops'] is mmcv.ops,
                          mmcv.ops.nms.__module__, seg_sparse.is_registered(),
                          MODELS.get('SparseEncoderDecoder') is not None]))
    """, tmp_path)
    assert out == [True, True, "seg_sparse.compat.detection_ops", True, True]


@pytest.mark.slow
def test_mmseg_apis_in_a_fresh_interpreter_that_imports_mmseg_first(tmp_path: Path):
    _images(tmp_path / "images")
    out = _run(f"""
        import json, os
        from mmseg.apis import MMSegInferencer, inference_model, init_model, show_result_pyplot
        import numpy as np, sys, torch
        from mmseg.datasets import CityscapesDataset

        handed_over = 'seg_sparse' in sys.modules
        model = init_model({str(SEG_CONFIG)!r}, device='cpu')
        meta = dict(classes=list(CityscapesDataset.METAINFO['classes']),
                    palette=[list(p) for p in CityscapesDataset.METAINFO['palette']])
        torch.save(dict(state_dict=model.state_dict(), meta=dict(dataset_meta=meta)), 'ck.pth')
        model = init_model({str(SEG_CONFIG)!r}, 'ck.pth', device='cpu')
        by_path = inference_model(model, 'images/scene0.png')
        by_array = inference_model(model, np.zeros((64, 128, 3), np.uint8))
        drawn = show_result_pyplot(model, 'images/scene0.png', by_path, show=False,
                                   out_file='shown.png')
        inferencer = MMSegInferencer(model={str(SEG_CONFIG)!r}, weights='ck.pth', device='cpu')
        result = inferencer('images', out_dir='out')
        print(json.dumps(dict(
            handed_over=handed_over,
            shapes=[list(by_path.pred_sem_seg.shape), list(by_array.pred_sem_seg.shape)],
            blocks=len(by_path.metainfo['sampling_densities']),
            drawn=list(drawn.shape), shown=os.path.getsize('shown.png') > 1000,
            vis=sorted(os.listdir('out/vis')), pred=sorted(os.listdir('out/pred')),
            predictions=[list(p.shape) for p in result['predictions']])))
    """, tmp_path)
    assert out["handed_over"]
    assert out["shapes"] == [[64, 128], [64, 128]]
    assert out["blocks"] == 16
    assert out["drawn"] == [64, 128, 3] and out["shown"]
    assert out["vis"] == ["scene0.png", "scene1.png"]
    assert out["pred"] == ["00000000_pred.png", "00000001_pred.png"]
    assert out["predictions"] == [[64, 128], [64, 128]]


@pytest.mark.slow
def test_mmdet_apis_in_a_fresh_interpreter_that_imports_mmdet_first(tmp_path: Path):
    _images(tmp_path / "images", size=(128, 256))
    out = _run(f"""
        import json, os
        from mmdet.apis import DetInferencer, inference_detector, init_detector
        import numpy as np, torch

        model = init_detector({str(DET_CONFIG)!r}, device='cpu')
        classes = ['person', 'rider', 'car', 'traffic light', 'traffic sign']
        torch.save(dict(state_dict=model.state_dict(),
                        meta=dict(dataset_meta=dict(classes=classes))), 'ck.pth')
        model = init_detector({str(DET_CONFIG)!r}, 'ck.pth', device='cpu')
        by_path = inference_detector(model, 'images/scene0.png')
        from seg_sparse.apis import inference_with_masks
        from seg_sparse.apis.inferencers import SparseDetInferencer

        masked = inference_with_masks(model, 'images/scene1.png', blocks=['layer3.0'])
        # (inference_detector with an array rewrites model.cfg for good: files fail after it)
        by_array = inference_detector(model, np.zeros((128, 256, 3), np.uint8))
        inferencer = DetInferencer(model={str(DET_CONFIG)!r}, weights='ck.pth', device='cpu')
        result = inferencer('images', out_dir='out', no_save_pred=False)
        sparse = SparseDetInferencer(model={str(DET_CONFIG)!r}, weights='ck.pth', device='cpu')
        with_masks = sparse('images', out_dir='sparse', return_masks=True,
                            draw_masks=['layer3.0'])['predictions']
        print(json.dumps(dict(
            boxes=[by_path.pred_instances.bboxes.shape[1], by_array.pred_instances.bboxes.shape[1]],
            blocks=len(by_path.metainfo['sampling_densities']),
            vis=sorted(os.listdir('out/vis')), preds=sorted(os.listdir('out/preds')),
            keys=sorted(result['predictions'][0]),
            masked=[list(masked.masks['layer3.0'].mask2.shape), len(masked.densities)],
            sparse_keys=sorted(with_masks[0]), sparse_masks=len(with_masks[1]['sampling_masks']),
            sparse_vis=sorted(os.listdir('sparse/vis')))))
    """, tmp_path)
    assert out["boxes"] == [4, 4]
    assert out["blocks"] == 16
    assert out["vis"] == ["scene0.png", "scene1.png"]
    assert out["preds"] == ["scene0.json", "scene1.json"]
    assert out["keys"] == ["bboxes", "labels", "scores"]
    assert out["masked"] == [[128, 256], 16]  # the image's size (the padded input is cut)
    assert out["sparse_keys"] == ["bboxes", "labels", "sampling_densities", "sampling_masks",
                                  "scores"]
    assert out["sparse_masks"] == 32
    assert out["sparse_vis"] == ["scene0.png", "scene0_masks.png", "scene1.png",
                                 "scene1_masks.png"]


def _shipped_configs() -> list[Path]:
    return sorted(p for p in CONFIGS.rglob("*.py") if "_base_" not in p.parts)


@pytest.mark.parametrize("path", _shipped_configs(), ids=lambda p: str(p.relative_to(CONFIGS)))
def test_every_shipped_config_runs_through_the_inference_apis_pipelines(path: Path,
                                                                         tmp_path: Path):
    """The pipelines mmseg's ``inference_model`` / ``MMSegInferencer`` (mmdet's
    ``inference_detector`` / ``DetInferencer``) make of the config's test pipeline build and
    turn an image file and an array into a model input."""
    from mmengine.registry import init_default_scope

    (image,) = _images(tmp_path, n=1, size=(64, 96))
    array = cv2.imread(str(image))
    cfg = Config.fromfile(str(path))
    init_default_scope(cfg.default_scope)
    if cfg.default_scope == "mmseg":
        from mmseg.apis import MMSegInferencer
        from mmseg.apis.utils import _preprare_data

        for img in (str(image), array):
            data, _ = _preprare_data(img, types.SimpleNamespace(cfg=copy.deepcopy(cfg)))
            assert data["inputs"][0].shape[0] == 3
        pipeline = MMSegInferencer._init_pipeline(object.__new__(MMSegInferencer),
                                                  copy.deepcopy(cfg))
        assert pipeline(str(image))["inputs"].shape[0] == 3
    else:
        from mmcv.transforms import Compose
        from mmdet.apis import DetInferencer
        from mmdet.utils import get_test_pipeline_cfg

        steps = get_test_pipeline_cfg(copy.deepcopy(cfg))
        assert Compose(steps)(dict(img_path=str(image), img_id=0))["inputs"].shape[0] == 3
        steps[0].type = "mmdet.LoadImageFromNDArray"  # what inference_detector does for arrays
        assert Compose(steps)(dict(img=array, img_id=0))["inputs"].shape[0] == 3
        pipeline = DetInferencer._init_pipeline(object.__new__(DetInferencer),
                                                copy.deepcopy(cfg))
        assert pipeline(str(image))["inputs"].shape[0] == 3


# -- masks in the predictions -----------------------------------------------------------------

def test_return_sampling_masks_puts_every_blocks_masks_into_the_prediction():
    from seg_sparse.sampling import sparse_blocks

    model = tiny_segmentor(return_sampling_masks=True).eval()
    randomize_masks(model)
    with torch.no_grad():
        results = model.predict(torch.randn(2, 3, H, W), samples(2))
    blocks = dict(sparse_blocks(model.backbone))
    for i, sample in enumerate(results):
        masks = sample.sampling_masks
        assert set(masks.keys()) == {f"{b}.mask{k}" for b in blocks for k in (1, 2)}
        for name, block in blocks.items():
            for k, drawn in enumerate((block.last_sampling.mask1, block.last_sampling.mask2), 1):
                mask = masks.get(f"{name}.mask{k}")
                assert mask.dtype == torch.bool and mask.shape == drawn.shape[-2:]
                assert torch.equal(mask, drawn[i, 0] > 0.5)
                density = sample.metainfo["sampling_densities"][name][k - 1]
                assert float(mask.float().mean()) == pytest.approx(density)
        assert "head_sampling_masks" not in sample  # a dense FCN head


def test_masks_are_off_by_default_and_the_switch_restores_test_cfg():
    model = tiny_segmentor().eval()
    with torch.no_grad():
        (plain,) = model.predict(torch.randn(1, 3, H, W), samples(1))
        assert "sampling_masks" not in plain and "sampling_densities" in plain.metainfo
        with model.returning_sampling_masks():
            (masked,) = model.predict(torch.randn(1, 3, H, W), samples(1))
    assert "sampling_masks" in masked
    assert dict(model.test_cfg) == {"mode": "whole"}


def test_a_sampled_heads_masks_are_in_the_prediction_too():
    model = sparse_head_segmentor().eval()
    with torch.no_grad(), model.returning_sampling_masks():
        (sample,) = model.predict(torch.randn(1, 3, H, W), samples(1))
    head = sample.head_sampling_masks
    assert set(head.keys()) == {"convs.0", "conv_cat"}
    for name, drawn in zip(("convs.0", "conv_cat"),
                           model.decode_head.sampling.last_sampling.masks):
        assert torch.equal(head.get(name), drawn[0, 0] > 0.5)
        assert float(head.get(name).float().mean()) == pytest.approx(
            sample.metainfo["head_sampling_densities"][name])


def test_slide_inference_refuses_masks_it_cannot_place():
    model = tiny_segmentor(return_sampling_masks=True).eval()
    model.test_cfg.update(mode="slide", crop_size=(H, W // 2), stride=(H, W // 2))
    with pytest.raises(ValueError, match="mode='whole'.*ran 2"), torch.no_grad():
        model.predict(torch.randn(1, 3, H, W), samples(1))


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A checkpoint of the shipped sparse-head demo config (random weights, Cityscapes meta),
    as mmseg's init_model reads it."""
    from mmseg.apis import init_model
    from mmseg.datasets import CityscapesDataset

    model = init_model(str(HEAD_CONFIG), device="cpu")
    meta = dict(classes=list(CityscapesDataset.METAINFO["classes"]),
                palette=[list(p) for p in CityscapesDataset.METAINFO["palette"]])
    path = tmp_path_factory.mktemp("ckpt") / "sparse_head.pth"
    torch.save(dict(state_dict=model.state_dict(), meta=dict(dataset_meta=meta)), path)
    return path


def test_inference_with_masks_returns_prediction_masks_and_densities(checkpoint, tmp_path):
    from mmseg.apis import init_model

    from seg_sparse.apis import MaskedPrediction, inference_with_masks

    (image,) = _images(tmp_path, n=1)
    model = init_model(str(HEAD_CONFIG), str(checkpoint), device="cpu")
    result = inference_with_masks(model, str(image))
    assert isinstance(result, MaskedPrediction)
    assert list(result.masks) == ["layer1.2", "layer2.3", "layer3.5", "layer4.2"]
    assert list(result.head_masks) == HEAD_CONVS
    assert len(result.densities) == 16 and list(result.head_densities) == HEAD_CONVS
    for name, entry in result.masks.items():
        assert entry.mask1.shape == entry.mask2.shape == (64, 128)
        assert (entry.density1, entry.density2) == pytest.approx(result.densities[name])
        feature = result.prediction.sampling_masks.get(f"{name}.mask2")
        assert entry.mask2.mean() == pytest.approx(float(feature.float().mean()))
    assert not model.returns_sampling_masks  # switched on for the call only
    arrays = inference_with_masks(model, [cv2.imread(str(image))] * 2, blocks="all")
    assert len(arrays) == 2 and len(arrays[1].masks) == 16
    with pytest.raises(ValueError, match="unknown sampling block"):
        inference_with_masks(model, str(image), blocks=["layer9.0"])


def test_sparse_seg_inferencer_returns_densities_and_on_request_masks_and_figures(checkpoint,
                                                                                 tmp_path):
    from seg_sparse.apis.inferencers import SparseSegInferencer

    images = _images(tmp_path / "images")
    inferencer = SparseSegInferencer(model=str(HEAD_CONFIG), weights=str(checkpoint),
                                     device="cpu")
    plain = inferencer(str(images[0]))
    assert plain["predictions"].shape == (64, 128)
    assert len(plain["sampling_densities"]) == 16
    assert list(plain["head_sampling_densities"]) == HEAD_CONVS
    assert "sampling_masks" not in plain

    out = inferencer(str(tmp_path / "images"), out_dir=str(tmp_path / "out"), return_masks=True,
                     draw_masks=True)
    assert len(out["sampling_masks"]) == 2
    masks = out["sampling_masks"][1]
    assert list(masks)[:2] == ["layer1.0.mask1", "layer1.0.mask2"] and len(masks) == 32
    assert masks["layer3.5.mask2"].dtype == bool
    assert masks["layer3.5.mask2"].mean() == pytest.approx(
        out["sampling_densities"][1]["layer3.5"][1])
    assert list(out["head_sampling_masks"][0]) == HEAD_CONVS
    vis = sorted(p.name for p in (tmp_path / "out/vis").iterdir())
    assert vis == ["scene0.png", "scene0_masks.png", "scene1.png", "scene1_masks.png"]
    assert (tmp_path / "out/vis/scene0_masks.png").stat().st_size > 10_000
    with pytest.raises(ValueError, match="carries no sampling masks"):
        inferencer(str(images[0]), out_dir=str(tmp_path / "out2"), draw_masks=True)
    with pytest.raises(ValueError, match="give out_dir"):
        inferencer(str(images[0]), return_masks=True, draw_masks=True)
