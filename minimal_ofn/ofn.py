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


def ofn(features, eps=1e-12):
    """phi / max(||phi||_2, eps), the norm over the last (feature) axis of each sample."""
    norm = features.norm(dim=-1, keepdim=True)
    return features / norm.clamp_min(eps)
