"""Samplers for scenario distributions, parameterised by mean and standard deviation as
call-center people state them (not by the textbook shape parameters)."""

from __future__ import annotations

import math
from collections.abc import Callable
from random import Random

from hotline.sim.scenario import Distribution

Sampler = Callable[[], float]


def sampler(dist: Distribution, rng: Random) -> Sampler:
    kind = dist.dist
    if kind == "exponential":
        assert dist.mean is not None
        mean = dist.mean
        uniform = rng.random
        # Inverse transform, as Random.expovariate does, without its Python-level call.
        return lambda: -math.log(1.0 - uniform()) * mean
    if kind == "lognormal":
        assert dist.mean is not None and dist.sd is not None
        sigma2 = math.log1p((dist.sd / dist.mean) ** 2)
        mu = math.log(dist.mean) - sigma2 / 2
        sigma = math.sqrt(sigma2)
        logn = rng.lognormvariate
        return lambda: logn(mu, sigma)
    if kind == "gamma":
        assert dist.mean is not None and dist.sd is not None
        shape = (dist.mean / dist.sd) ** 2
        scale = dist.sd**2 / dist.mean
        gamma = rng.gammavariate
        return lambda: gamma(shape, scale)
    if kind == "constant":
        value = dist.expected
        return lambda: value
    values = list(dist.values or ())
    choice = rng.choice
    return lambda: choice(values)
