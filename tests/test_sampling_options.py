"""SamplingOptions: one option list and one set of defaults for blocks, heads and backbones,
checked whenever a value is set."""

import pytest

from seg_sparse.sampling import HeadSampling, SamplingOptions, SparseBottleneck


def test_one_set_of_defaults_everywhere():
    from seg_sparse.models import SparseDetResNet, SparseResNetV1c

    defaults = SamplingOptions()
    block = SparseBottleneck(16, 4)
    head = HeadSampling([8], [72])
    assert block.options == defaults and head.options == defaults
    seg = SparseResNetV1c(depth=50, base_channels=16, stem_channels=16)
    det = SparseDetResNet(depth=50, base_channels=16)
    for backbone in (seg, det):
        assert backbone.sampling_options == defaults
        assert backbone.layer1[0].temperature.max_iters == defaults.max_iters


@pytest.mark.parametrize("key, value, message", [
    ("sampler", "bernoulli", "sampler must be one of"),
    ("grid_interval", -1, "grid_interval must be None"),
    ("grid_interval", 2.5, "grid_interval must be None"),
    ("interp_window", 4, "positive odd"),
    ("t0", 0, "t0 must be"),
    ("t_final", 2.0, "must not exceed t0"),
    ("max_iters", 0, "max_iters"),
    ("execution", "fast", "execution must be one of"),
])
def test_bad_values_are_refused_at_construction_and_on_assignment(key, value, message):
    with pytest.raises(ValueError, match=message):
        SamplingOptions(**{key: value})
    options = SamplingOptions()
    with pytest.raises(ValueError, match=message):
        setattr(options, key, value)
    assert getattr(options, key) == getattr(SamplingOptions(), key)  # left as it was


def test_layers_check_assignments_through_their_options():
    block = SparseBottleneck(16, 4, execution="masked", grid_interval=None)
    assert (block.execution, block.grid_interval) == ("masked", None)
    with pytest.raises(ValueError, match="execution must be one of"):
        block.execution = "x"
    with pytest.raises(ValueError, match="grid_interval must be"):
        block.grid_interval = -2
    block.execution = "sparse"
    assert block.options.execution == "sparse"


def test_each_block_owns_its_options():
    """A backbone hands every block its own copy: switching one block leaves the rest."""
    from seg_sparse.models import SparseResNetV1c

    backbone = SparseResNetV1c(depth=50, base_channels=16, stem_channels=16, execution="sparse")
    first, second = backbone.layer1[0], backbone.layer1[1]
    first.execution = "masked"
    assert second.execution == "sparse" and backbone.sampling_options.execution == "sparse"


def test_unknown_option_names_are_refused():
    with pytest.raises(TypeError, match="unknown sampling option"):
        SparseBottleneck(16, 4, temperature=0.5)
    with pytest.raises(TypeError, match="unknown sampling option"):
        SamplingOptions().replace(window=5)


def test_split_separates_sampling_keys_from_the_rest():
    options, rest = SamplingOptions.split({"sampler": "relu", "depth": 50, "t0": 2.0})
    assert options == SamplingOptions(sampler="relu", t0=2.0)
    assert rest == {"depth": 50}
