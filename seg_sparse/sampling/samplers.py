"""Samplers: turn mask logits into (probability, mask) pairs, behind one interface.

All samplers take logits z of shape (B, 1, H, W) and return a :class:`SampleResult`:

* ``prob``: what the sparsity loss penalises (differentiable in z);
* ``mask``: what gates the features -- soft in (0, 1) during training; at test binary {0, 1}
  for the Gumbel samplers and the soft ReLU gate (exactly 0 off its support) for ``relu``.

A position is computed wherever the test mask is non-zero; :meth:`MaskSampler.computed` maps a
mask to the share of each position that is computed, and its mean is the density.

``stochastic`` (the paper)
    training: binary-concrete relaxation m = sigmoid((z + L) / T), L = log u - log(1 - u),
    u ~ U(0, 1) (L ~ Logistic(0, 1), the difference of two Gumbel(0, 1) draws);
    eval: m = 1[z + L >= 0], i.e. an independent Bernoulli(sigmoid(z)) draw per position.
    prob = sigmoid(z).
``deterministic`` (baseline "Determ Gumbel-Softmax")
    training as ``stochastic``; eval: m = 1[sigmoid(z) >= 0.5], computed as 1[z >= 0].
``relu`` (baseline: deterministic ReLU gate, no noise, no temperature)
    gate g = 1 - exp(-relu(z)). g is exactly 0 for z <= 0, rises smoothly to 1, and at the
    predictor's initial logit z = 3 equals 0.95 with slope 0.05 -- the same starting density and
    nearly the same gradient as sigmoid(3) = 0.953 (slope 0.045), so all samplers start alike.
    mask m = g in training and at test alike, so kept features carry the weight they were
    trained with (a test mask 1[z > 0] would turn z = 0.3's weight 0.26 into 1); the computed
    positions are the support g > 0 and the density is their fraction (same support, same
    FLOPs as 1[z > 0]). prob = g, so the sparsity loss is an L1 penalty on the gate that drives
    z below 0, where the gate is exactly zero.
``dense``
    no logits needed; everything is sampled. The sparse block short-cuts this sampler entirely
    (no predictors, no interpolation), so calling it is only for uniform code paths.

Noise is drawn with ``torch.rand(..., generator=generator)`` so a seeded ``torch.Generator``
(on the logits' device) makes a stochastic run repeatable; compiled, from torch's global RNG
(:func:`logistic_noise`, :mod:`.rng`).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch


@dataclass
class SampleResult:
    """Output of a sampler: ``prob`` for the loss, ``mask`` for gating (same shape as z)."""

    prob: torch.Tensor
    mask: torch.Tensor


def logistic_noise(
    like: torch.Tensor, generator: torch.Generator | None = None
) -> torch.Tensor:
    """L ~ Logistic(0, 1) shaped like ``like`` (u clamped away from 0 and 1 to stay finite).

    Under ``torch.compile`` / ``torch.export`` the draw is ``torch.rand_like`` on torch's
    global RNG: a generator cannot enter a graph, and ``torch.rand(shape)`` rejects symbolic
    sizes. :func:`~.rng.seeded_sampling` runs a compiled model on its layers' generator by
    making it the global RNG for the call (the layers refuse to compile with a generator
    otherwise, :func:`~.rng.check_generator_compiles`).
    """
    if torch.compiler.is_compiling():
        u = torch.rand_like(like, memory_format=torch.contiguous_format)  # eager's order
    else:
        if generator is not None and generator.device.type != like.device.type:
            raise ValueError(
                f"sampling generator is on {generator.device} but the logits are on "
                f"{like.device}; create it with torch.Generator(device={str(like.device)!r})"
            )
        u = torch.rand(like.shape, generator=generator, device=like.device, dtype=like.dtype)
    eps = torch.finfo(like.dtype).eps
    u = u.clamp(eps, 1.0 - eps)
    return torch.log(u) - torch.log1p(-u)


class MaskSampler:
    """Base class. Subclasses implement :meth:`sample`; ``is_dense`` skips all sampling."""

    name: str = ""
    is_dense: bool = False
    #: whether the Gumbel temperature matters (False: relu / dense ignore it)
    uses_temperature: bool = False

    def sample(
        self,
        logits: torch.Tensor,
        training: bool,
        temperature: torch.Tensor | float = 1.0,
        generator: torch.Generator | None = None,
    ) -> SampleResult:
        raise NotImplementedError

    def computed(self, mask: torch.Tensor) -> torch.Tensor:
        """Share of each position of ``mask`` that is computed; its mean is the density.

        The mask itself: binary test masks mark the computed positions, and the mean of a soft
        training mask is the expected density of the binary masks it relaxes.
        """
        return mask

    def __call__(
        self,
        logits: torch.Tensor,
        training: bool,
        temperature: torch.Tensor | float = 1.0,
        generator: torch.Generator | None = None,
    ) -> SampleResult:
        if logits.dim() != 4 or logits.shape[1] != 1:
            raise ValueError(f"{self.name} sampler expects logits (B, 1, H, W), got "
                             f"{tuple(logits.shape)}")
        return self.sample(logits, training, temperature, generator)

    def __repr__(self) -> str:
        return f"{type(self).__name__}()"


class StochasticSampler(MaskSampler):
    """The paper's sampler: Gumbel-sigmoid in training, Bernoulli(p) at test."""

    name = "stochastic"
    uses_temperature = True

    def relaxed(
        self,
        logits: torch.Tensor,
        temperature: torch.Tensor | float,
        generator: torch.Generator | None,
    ) -> torch.Tensor:
        return torch.sigmoid((logits + logistic_noise(logits, generator)) / temperature)

    def eval_mask(
        self, logits: torch.Tensor, generator: torch.Generator | None
    ) -> torch.Tensor:
        return (logits + logistic_noise(logits, generator) >= 0).to(logits.dtype)

    def sample(
        self,
        logits: torch.Tensor,
        training: bool,
        temperature: torch.Tensor | float = 1.0,
        generator: torch.Generator | None = None,
    ) -> SampleResult:
        prob = torch.sigmoid(logits)
        if training:
            return SampleResult(prob, self.relaxed(logits, temperature, generator))
        return SampleResult(prob, self.eval_mask(logits, generator))


class DeterministicSampler(StochasticSampler):
    """Same training as the paper; at test a fixed threshold p >= 0.5 (no noise)."""

    name = "deterministic"

    def eval_mask(
        self, logits: torch.Tensor, generator: torch.Generator | None
    ) -> torch.Tensor:
        return (logits >= 0).to(logits.dtype)


class ReLUSampler(MaskSampler):
    """Deterministic gate g = 1 - exp(-relu(z)) as the mask in training and at test; the
    computed positions are its support g > 0; temperature unused."""

    name = "relu"

    def computed(self, mask: torch.Tensor) -> torch.Tensor:
        """1 wherever the gate is non-zero: a position is computed whatever its weight."""
        return (mask > 0).to(mask.dtype)

    def sample(
        self,
        logits: torch.Tensor,
        training: bool,
        temperature: torch.Tensor | float = 1.0,
        generator: torch.Generator | None = None,
    ) -> SampleResult:
        gate = -torch.expm1(-torch.relu(logits))
        return SampleResult(gate, gate)


class DenseSampler(MaskSampler):
    """Everything sampled (the dense / uniform-sampling baseline)."""

    name = "dense"
    is_dense = True

    def sample(
        self,
        logits: torch.Tensor,
        training: bool,
        temperature: torch.Tensor | float = 1.0,
        generator: torch.Generator | None = None,
    ) -> SampleResult:
        ones = torch.ones_like(logits)
        return SampleResult(ones, ones)


SAMPLERS: dict[str, type[MaskSampler]] = {
    cls.name: cls
    for cls in (StochasticSampler, DeterministicSampler, ReLUSampler, DenseSampler)
}


def build_sampler(name: str, **kwargs) -> MaskSampler:
    """Sampler by name: one of ``'stochastic'``, ``'deterministic'``, ``'relu'``, ``'dense'``."""
    if name not in SAMPLERS:
        raise ValueError(f"unknown sampler {name!r}; choose one of {sorted(SAMPLERS)}")
    return SAMPLERS[name](**kwargs)
