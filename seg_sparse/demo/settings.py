"""What a demo run does: options, their checks, and where the configs and outputs live."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from seg_sparse.errors import UserInputError

#: The demo's configs (relative to the configs folder); see their headers for the choices.
DENSE_CONFIG = "cpu/fcn_r50-d8-dcn-w16_1xb4-demo_synthcity-64x128.py"
SPARSE_CONFIG = "cpu/sparse-fcn_r50-d8-dcn-w16_1xb4-demo_synthcity-64x128.py"
#: The third model: the sparse backbone plus a sampled FCN head (docs/sparse_head.md).
SPARSE_HEAD_CONFIG = "cpu/sparse-fcn-sparsehead_r50-d8-dcn-w16_1xb4-demo_synthcity-64x128.py"
#: Environment variable naming the configs folder when the package is not run from a checkout.
CONFIGS_ENV = "SEG_SPARSE_CONFIGS"
DEVICES = ("cpu", "cuda")


class DemoError(UserInputError, RuntimeError):
    """A problem with the demo's options or environment, reported without a traceback."""


def configs_dir() -> Path:
    """``$SEG_SPARSE_CONFIGS``, else the configs shipped in the package (``seg_sparse/configs``,
    a link to the repository's ``configs/`` in a checkout)."""
    override = os.environ.get(CONFIGS_ENV)
    folder = Path(override) if override else Path(__file__).resolve().parents[1] / "configs"
    names = (DENSE_CONFIG, SPARSE_CONFIG, SPARSE_HEAD_CONFIG)
    if not all((folder / name).is_file() for name in names):
        raise DemoError(
            f"demo configs not found under {folder} ({', '.join(names)}); "
            f"reinstall seg-sparse or set {CONFIGS_ENV} to a checkout's configs/ folder"
        )
    return folder


@dataclass(frozen=True)
class DemoSettings:
    """Options of ``seg-sparse demo``.

    ``iters``: training iterations of the dense twin (None: the config's); ``sparse_iters``:
    fine-tuning iterations of the sparse models (sparse backbone; sparse backbone and head),
    each started from the dense checkpoint (None: the config's). ``size``: (H, W) of the
    generated scenes; training crops are half of it, the evaluation runs on the full image.
    """

    out_dir: Path
    iters: int | None = None
    sparse_iters: int | None = None
    num_train: int = 24
    num_val: int = 8
    seed: int = 0
    device: str = "cpu"
    size: tuple[int, int] = (128, 256)

    def __post_init__(self) -> None:
        object.__setattr__(self, "out_dir", Path(self.out_dir))
        for name in ("iters", "sparse_iters"):
            value = getattr(self, name)
            if value is not None and value < 1:
                raise DemoError(f"--{name.replace('_', '-')} must be >= 1, got {value}")
        if self.num_train < 1 or self.num_val < 1:
            raise DemoError(f"--num-train and --num-val must be >= 1, got {self.num_train} "
                            f"and {self.num_val}")
        if self.seed < 0:
            raise DemoError(f"--seed must be >= 0, got {self.seed}")
        if self.device not in DEVICES:
            raise DemoError(f"--device must be one of {DEVICES}, got {self.device!r}")
        h, w = self.size
        if h < 64 or w < 64 or h % 32 or w % 32:
            raise DemoError(f"--size must be two multiples of 32, each >= 64 (H W), got {h} {w}")

    @property
    def crop_size(self) -> tuple[int, int]:
        return self.size[0] // 2, self.size[1] // 2

    @property
    def data_root(self) -> Path:
        """One folder per data setting, so that reruns reuse it and other settings don't mix."""
        h, w = self.size
        name = f"synthcity_{h}x{w}_train{self.num_train}_val{self.num_val}_seed{self.seed}"
        return self.out_dir / "data" / name
