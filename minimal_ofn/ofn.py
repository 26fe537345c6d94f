"""Output feature normalization (OFN), the paper's fix for high-UTD divergence.

The critic is Q(s, a) = w . phi(s, a) + b, with phi the last hidden features.
OFN divides the features of every sample by their own L2 norm,

    phi_ofn(s, a) = phi(s, a) / ||phi(s, a)||_2          (norm over features, per sample)

and feeds them to the ordinary final linear layer (weight w and bias b kept).
Because ||phi_ofn|| = 1, Cauchy-Schwarz gives

    |Q(s, a)| <= ||w||_2 + |b|

for *every* input, seen or unseen: the scale of Q can only grow as fast as the
last layer's weights grow, which takes many small gradient steps. Without OFN the
features themselves can grow without bound on out-of-distribution actions, and a
single bootstrapped overestimate there feeds itself through the target.

The norm is taken over the feature axis of each sample, never over the batch:
normalizing over the batch would couple samples and leave single rows unbounded.
"""

import torch
import torch.nn.functional as F


def ofn(features: torch.Tensor, eps: float = 1e-12) -> torch.Tensor:
    """phi / max(||phi||, eps) along the last (feature) axis."""
    return F.normalize(features, p=2.0, dim=-1, eps=eps)
