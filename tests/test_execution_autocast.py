"""The torch executor under CPU autocast (bfloat16): within bfloat16's tolerance of the masked
path, in the autocast dtype where the masked path's output is."""

from __future__ import annotations

import pytest
import torch
from sampling_reference import drawn_mask, make_block
from test_sampling_execution import BLOCKS, max_rel_err, output_hw

from seg_sparse.sampling import execution_mode

#: bfloat16 keeps 8 significant bits (relative rounding 2**-9); a block chains four roundings
TOLERANCE = 3e-2


@pytest.mark.parametrize("soft", [False, True])
@pytest.mark.parametrize("kind", list(BLOCKS))
def test_sparse_execution_under_cpu_autocast_matches_the_masked_path(kind, soft):
    block = make_block("relu" if soft else "stochastic", **BLOCKS[kind]).eval()
    generator = torch.Generator().manual_seed(0)
    x = torch.randn(2, 16, 11, 14, generator=generator)
    shapes = ((2, 1, 11, 14), (2, 1, *output_hw(11, 14, block.stride)))
    masks = [drawn_mask(s, 0.3, 3, generator) for s in shapes]
    if soft:
        masks = [m * torch.rand(m.shape, generator=generator) for m in masks]
    block.mask_override = tuple(masks)
    with torch.no_grad():
        with execution_mode(block, "masked"):
            reference = block(x)
            with torch.autocast("cpu", dtype=torch.bfloat16):
                masked = block(x)
        with execution_mode(block, "sparse"), torch.autocast("cpu", dtype=torch.bfloat16):
            got = block(x)
    assert masked.dtype == torch.bfloat16  # autocast really ran
    assert max_rel_err(got.float(), reference) < TOLERANCE
    assert max_rel_err(got.float(), masked.float()) < TOLERANCE
