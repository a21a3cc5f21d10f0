"""Seed derivation with common random numbers (docs/architecture.md, Time and seeds).

Every stochastic role gets its own generator seeded by a hash of (suite seed, role, the
parts of the cell that role depends on), so the training set depends only on
(seed, target), the initial points on (seed, target, initializer) and so on: two samplers
in the same seed see the same data and the same starts, whatever the executor, the
worker count, the cell order or a resume in between.
"""
from __future__ import annotations

import hashlib
import json
from typing import Any

import torch


def canonical_json(obj: Any) -> str:
    """JSON with sorted keys and no spaces: the canonical text of params and specs."""
    return json.dumps(obj, sort_keys=True, separators=(",", ":"), default=str)


def derive_seed(seed: int, role: str, *parts: Any) -> int:
    """A 63-bit seed from (suite seed, role, parts); independent across roles and parts."""
    text = canonical_json([int(seed), role, list(parts)])
    return int.from_bytes(hashlib.sha256(text.encode()).digest()[:8], "big") >> 1


def make_generator(seed: int, role: str, *parts: Any, device: str | torch.device = "cpu") -> torch.Generator:
    """A torch.Generator on ``device`` seeded with :func:`derive_seed`."""
    generator = torch.Generator(device=device)
    generator.manual_seed(derive_seed(seed, role, *parts))
    return generator
