"""Benchmark one 3x3 layer: plain conv vs torchvision's DCN vs ours, forward and forward+backward.

``python -m seg_sparse.benchmark.dcn_layer [--shapes 256x64x128 ...] [--threads 2] [--device cpu]``

Every repeat runs each implementation once, in turn (alternated, so load from other processes
hits all of them alike), after a warm-up; the table shows medians over the repeats and the
ratios to the plain convolution of the same shape. Offsets are drawn with standard deviation
``--offset-std`` pixels (trained DCN offsets are a few pixels). ``run_benchmark`` returns the
rows for callers such as ``seg-sparse bench``.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Callable
from dataclasses import asdict, dataclass

import torch
import torch.nn.functional as F
from torchvision.ops import deform_conv2d as tv_deform_conv2d

from seg_sparse.ops import deform_conv2d, deform_conv2d_at

from .timing import alternated_medians, sync_device

#: (channels, height, width, dilation): the paper model's DCN layers at 512x1024 and
#: 1024x2048 (stages 2-4 at output stride 8: 128 / 256 / 512 channels, dilation 1 / 2 / 4)
#: and the narrow widths of the tests.
DEFAULT_SHAPES = (
    (128, 64, 128, 1), (256, 64, 128, 2), (512, 64, 128, 4), (128, 128, 256, 1),
    (256, 128, 256, 2), (16, 32, 64, 1), (64, 32, 64, 2),
)
IMPLS = ("conv", "torchvision", "ours")


@dataclass(frozen=True)
class LayerMode:
    """What one row times: the forward, or forward + backward; ``density`` < 1: ours only at
    that fraction of the output positions (``deform_conv2d_at``, forward only)."""

    backward: bool = False
    density: float = 1.0

    def __post_init__(self) -> None:
        if not 0 < self.density <= 1 or (self.backward and self.density < 1):
            raise ValueError(f"a layer mode times the forward (+ backward at density 1) at a "
                             f"density in (0, 1], got {self}")

    @property
    def label(self) -> str:
        if self.density < 1:
            return f"at {100 * self.density:g}%"
        return "forward+backward" if self.backward else "forward"


FORWARD, FORWARD_BACKWARD = LayerMode(), LayerMode(backward=True)


@dataclass
class BenchRow:
    """Medians in milliseconds for one layer shape and mode (forward / forward+backward)."""

    channels: int
    height: int
    width: int
    dilation: int
    batch: int
    mode: str
    conv_ms: float
    torchvision_ms: float
    ours_ms: float
    device: str
    threads: int

    @property
    def ours_vs_conv(self) -> float:
        return self.ours_ms / self.conv_ms

    @property
    def torchvision_vs_ours(self) -> float:
        return self.torchvision_ms / self.ours_ms


def _layer_calls(channels: int, height: int, width: int, dilation: int, batch: int,
                 device: torch.device, backward: bool, offset_std: float,
                 density: float = 1.0) -> dict[str, Callable[[], None]]:
    """The three calls of one layer; ``density`` < 1: ours runs at that fraction of the output
    positions only (``deform_conv2d_at``, forward), the others stay dense."""
    gen = torch.Generator().manual_seed(0)
    x = torch.randn(batch, channels, height, width, generator=gen).to(device)
    weight = (torch.randn(channels, channels, 3, 3, generator=gen) * 0.02).to(device)
    offset = (torch.randn(batch, 18, height, width, generator=gen) * offset_std).to(device)
    for t in (x, weight, offset):
        t.requires_grad_(backward)
    pad = (dilation, dilation)
    dil = (dilation, dilation)

    def run(fn: Callable[[], torch.Tensor]) -> Callable[[], None]:
        def call() -> None:
            with torch.set_grad_enabled(backward):
                out = fn()
                if backward:
                    out.backward(torch.ones_like(out))
        return call

    def ours() -> torch.Tensor:
        return deform_conv2d(x, offset, weight, padding=pad, dilation=dil, use_taps=True)

    if density < 1:
        count = batch * height * width
        positions = torch.randperm(count, generator=gen)[:round(density * count)].to(device)
        nhwc = x.detach().contiguous(memory_format=torch.channels_last).permute(0, 2, 3, 1)
        rows = offset.detach().permute(0, 2, 3, 1).reshape(count, -1)[positions]

        def ours() -> torch.Tensor:
            return deform_conv2d_at(nhwc, positions, rows, weight, padding=pad, dilation=dil)

    return {
        "conv": run(lambda: F.conv2d(x, weight, padding=pad, dilation=dil)),
        "torchvision": run(lambda: tv_deform_conv2d(x, offset, weight, padding=pad,
                                                    dilation=dil)),
        "ours": run(ours),
    }


def run_benchmark(
    shapes: tuple[tuple[int, int, int, int], ...] = DEFAULT_SHAPES,
    batch: int = 1,
    repeats: int = 5,
    device: str = "cpu",
    modes: tuple[LayerMode, ...] = (FORWARD, FORWARD_BACKWARD),
    offset_std: float = 1.0,
    log: Callable[[str], None] | None = None,
) -> list[BenchRow]:
    """Time every shape and mode; alternated implementations, one warm-up, medians. A mode
    below density 1 times ours at that fraction of the output positions (forward, through
    ``deform_conv2d_at``), conv and torchvision dense."""
    dev = torch.device(device)
    rows = []
    for channels, height, width, dilation in shapes:
        for mode in modes:
            calls = _layer_calls(channels, height, width, dilation, batch, dev, mode.backward,
                                 offset_std, mode.density)
            med = alternated_medians(calls, repeats, warmup=1, device=dev)
            row = BenchRow(channels, height, width, dilation, batch, mode.label, med["conv"],
                           med["torchvision"], med["ours"], device, torch.get_num_threads())
            rows.append(row)
            if log is not None:
                log(format_row(row))
    return rows


HEADER = (f"{'C':>4} {'HxW':>8} {'dil':>3} {'mode':>16} {'conv ms':>9} {'tv ms':>9} "
          f"{'ours ms':>9} {'ours/conv':>9} {'tv/ours':>8}")


def format_row(row: BenchRow) -> str:
    return (f"{row.channels:>4} {f'{row.height}x{row.width}':>8} {row.dilation:>3} "
            f"{row.mode:>16} {row.conv_ms:>9.1f} {row.torchvision_ms:>9.1f} {row.ours_ms:>9.1f} "
            f"{row.ours_vs_conv:>9.2f} {row.torchvision_vs_ours:>8.2f}")


def profile_layer(shape: tuple[int, int, int, int], batch: int = 1, device: str = "cpu",
                  impls: tuple[str, ...] = IMPLS, offset_std: float = 1.0,
                  rows: int = 12) -> dict[str, str]:
    """torch.profiler tables (self time, top ``rows`` ops) of one forward + backward per
    implementation, after a warm-up: where the time goes."""
    from torch.profiler import ProfilerActivity, profile

    activities = [ProfilerActivity.CPU]
    if device.startswith("cuda"):
        activities.append(ProfilerActivity.CUDA)
    calls = _layer_calls(*shape, batch, torch.device(device), True, offset_std)
    tables = {}
    for name in impls:
        calls[name]()
        with profile(activities=activities) as prof:
            calls[name]()
            sync_device(torch.device(device))
        key = "self_device_time_total" if device.startswith("cuda") else "self_cpu_time_total"
        tables[name] = prof.key_averages().table(sort_by=key, row_limit=rows)
    return tables


def _shape(text: str) -> tuple[int, int, int, int]:
    """'CxHxW' or 'CxHxWxD' (D: dilation, default 1)."""
    try:
        parts = [int(p) for p in text.lower().split("x")]
    except ValueError:
        parts = []
    if len(parts) == 3:
        parts.append(1)
    if len(parts) != 4 or min(parts) < 1:
        raise argparse.ArgumentTypeError(f"shape {text!r} is not CxHxW or CxHxWxDILATION")
    return tuple(parts)  # type: ignore[return-value]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m seg_sparse.benchmark.dcn_layer",
                                     description=__doc__.splitlines()[0])
    parser.add_argument("--shapes", nargs="+", type=_shape, default=list(DEFAULT_SHAPES),
                        help="layer shapes CxHxW[xDILATION] (C_in = C_out, 3x3, stride 1)")
    parser.add_argument("--batch", type=int, default=1)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--threads", type=int, default=2, help="torch CPU threads")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--forward-only", action="store_true")
    parser.add_argument("--densities", type=float, nargs="*", default=[],
                        help="also time ours at these fractions of the output positions "
                             "(deform_conv2d_at, forward), e.g. 0.5 0.3")
    parser.add_argument("--offset-std", type=float, default=1.0,
                        help="standard deviation of the random offsets, pixels")
    parser.add_argument("--out", help="also write the rows as JSON to this file")
    parser.add_argument("--profile", action="store_true",
                        help="instead: torch.profiler tables of one forward + backward of each "
                             "implementation at the first shape")
    args = parser.parse_args(argv)
    if args.device.startswith("cuda") and not torch.cuda.is_available():
        parser.exit(2, f"{parser.prog}: error: --device {args.device}: CUDA is not available\n")
    torch.set_num_threads(args.threads)
    # On cores shared with other processes, spinning OpenMP threads (the default policy) cost
    # every multi-threaded op milliseconds; OMP_WAIT_POLICY=PASSIVE (set before starting)
    # avoids it. Printed because it changes the timings severalfold there (docs/deform_conv.md).
    print(f"device {args.device}, threads {torch.get_num_threads()}, OMP_WAIT_POLICY "
          f"{os.environ.get('OMP_WAIT_POLICY', 'unset')}, torch {torch.__version__}, "
          f"batch {args.batch}, medians of {args.repeats} alternated repeats")
    if args.profile:
        for name, table in profile_layer(args.shapes[0], args.batch, args.device,
                                         offset_std=args.offset_std).items():
            print(f"--- {name}, forward + backward, {args.shapes[0]}\n{table}")
        return 0
    print(HEADER)
    modes = (FORWARD,) if args.forward_only else (FORWARD, FORWARD_BACKWARD)
    for density in args.densities:
        if not 0 < density < 1:
            parser.error(f"--densities: {density} is not in (0, 1)")
        modes += (LayerMode(density=density),)
    rows = run_benchmark(tuple(args.shapes), args.batch, args.repeats, args.device, modes,
                         args.offset_std, log=print)
    if args.out:
        with open(args.out, "w") as f:
            json.dump([asdict(r) | {"ours_vs_conv": r.ours_vs_conv,
                                    "torchvision_vs_ours": r.torchvision_vs_ours}
                       for r in rows], f, indent=1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
