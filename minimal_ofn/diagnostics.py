"""What the paper measures to show divergence, computed per agent on a fixed schedule.

- Overestimation: Q on the policy's own rollouts against their Monte Carlo return
      G_t = sum_{k>=0} gamma^k r_{t+k}
  from fresh rollouts of the current (stochastic) policy, on the first half of each
  rollout so that every G_t sums at least H/2 rewards (the cut-off error is at most
  gamma^(H/2) r_max / (1 - gamma), 0.7% of the largest possible value at H = 1000).
  The critic estimates the *soft* value, which also counts the entropy bonus; the MC
  return counts rewards only, as in the paper, and mc_soft_return adds the bonus back. Any Q above r_max / (1 - gamma) is
  impossible for rewards in [0, r_max] (up to that entropy bonus).
- Q on in-distribution actions (the replay's own) and on out-of-distribution actions
  (uniform in [-1, 1]^|A|), separately: OOD overestimation is what feeds divergence.
- Norm of the critic's last hidden features phi and of the final layer's weights w:
  |Q| <= ||w|| ||phi|| + |b|, so one of them must grow when Q blows up.
- Effective rank (Kumar et al. 2021): srank_delta(Phi) = min { k : sum_{i<=k} sigma_i >= (1 - delta) sum_i sigma_i },
  of the features Phi [B, d] as they are and centered (Phi minus its batch mean). A large direction
  shared by every sample swamps srank (it can read 1 while the samples still differ); the centered
  srank counts only the directions along which samples differ.
- Alignment of the features with the head (tutorial 5): cos(phi, w) = phi . w / (||phi|| ||w||),
  averaged over the batch, and q_spread, the standard deviation of Q over the batch. With OFN,
  Q = w . phi_hat + b can reach at most ||w|| + |b|; when the targets lie beyond that, gradient
  descent turns every phi_hat onto w: cos -> 1, Q becomes the same number for every input
  (q_spread -> 0), the centered srank collapses and the body gets no useful gradient.
- Adam state of the critic: mean and max of |m| (momentum) and v; the critic's gradient norm.
- The policy's entropy on the batch's states, H_pi = -E[log pi(a|s)] (one sample per state): the
  entropy bonus an honest soft Q can hold is alpha H_pi per step, not alpha |A| log 2 (measures.py).
"""

import numpy as np
import torch


def srank(features, delta=0.01):
    """Effective rank of features [..., B, d]: the smallest k whose top-k singular values reach (1 - delta) of the sum."""
    sigma = torch.linalg.svdvals(features)
    share = sigma.cumsum(-1) / sigma.sum(-1, keepdim=True).clamp_min(1e-12)
    return (share < 1.0 - delta).sum(-1) + 1


def discounted_returns(rewards, gamma):
    """G_t = r_t + gamma * G_{t+1}, with G_T = 0 after the last reward; one return per reward."""
    out = np.zeros(len(rewards))
    running = 0.0
    for t in reversed(range(len(rewards))):
        running = rewards[t] + gamma * running
        out[t] = running
    return out


@torch.no_grad()
def critic_diagnostics(sac, batch: dict, stream, critic_grads=None) -> dict:
    """Per-agent lists of Q statistics, feature/weight norms, srank and Adam moments on a replay batch, and the
    norm of the critic's gradient where critic_grads (what SAC.update returned last) is given. The policy's and the
    uniform actions are drawn from `stream` (streams.Stream, the diagnostics one)."""
    s, a = batch["obs"], batch["action"]
    n = sac.n
    policy_a, logp = sac.actor(s, stream.normal(*a.shape[1:]))
    ood_a = stream.uniform(*a.shape[1:]) * 2 - 1
    phi = sac.critic.features(s, a)  # [N, 2, B, d]: no dropout masks, the critic as it predicts
    # Moments of the linear layers only: LayerNorm parameters exist for every agent of a stack in
    # which any agent uses LayerNorm, and would dilute the statistics of those that do not.
    opt = sac.critic_opt
    linear = [p for layer in [*sac.critic.layers, sac.critic.head] for p in (layer.weight, layer.bias)]
    slot = {id(p): k for k, p in enumerate(opt.params)}
    m = torch.cat([opt.m[slot[id(p)]].view(n, -1) for p in linear], 1).abs()
    q_data = sac.critic(s, a)  # [N, 2, B]
    out = {
        "q_policy": sac.critic(s, policy_a).mean((1, 2)),
        "q_replay": q_data.mean((1, 2)),
        "q_ood": sac.critic(s, ood_a).mean((1, 2)),
        "feature_norm": phi.norm(dim=-1).mean((1, 2)),
        "head_weight_norm": sac.critic.head.weight.flatten(2).norm(dim=-1).mean(1),
        "srank": _srank_or_nan(sac.fn.srank, phi[:, 0]),
        "srank_centered": _srank_or_nan(sac.fn.srank, phi[:, 0] - phi[:, 0].mean(-2, keepdim=True)),
        "cos_phi_w": alignment(phi, sac.critic.head.weight.squeeze(-1)).mean((1, 2)),
        "q_spread": q_data.std(-1).mean(1),
        "adam_m_mean": m.mean(1),
        "adam_m_max": m.amax(1),
        "temperature": sac.log_alpha.exp(),
        "policy_entropy": -logp.reshape(n, -1).mean(1),  # H_pi on the batch's states: -E[log pi(a|s)]
    }
    if opt.v:
        v = torch.cat([opt.v[slot[id(p)]].view(n, -1) for p in linear], 1)
        out.update(adam_v_mean=v.mean(1), adam_v_max=v.amax(1))
    if critic_grads is not None:
        out["grad_norm"] = torch.cat([critic_grads[slot[id(p)]].reshape(n, -1) for p in linear], 1).norm(dim=1)
    return {k: v.tolist() for k, v in out.items()}


def alignment(phi, w):
    """cos(phi, w) per sample: phi [N, 2, B, d] features, w [N, 2, d] head weights -> [N, 2, B]."""
    return torch.nn.functional.cosine_similarity(phi, w.unsqueeze(2), dim=-1)


def _srank_or_nan(srank_fn, features):
    """srank per agent, NaN for an agent whose features are not finite (a diverged critic must not crash logging)."""
    finite = torch.isfinite(features).all(-1).all(-1)
    rank = srank_fn(torch.where(finite[..., None, None], features, 0.0)).float()
    return torch.where(finite, rank, float("nan"))


@torch.no_grad()
def rollout(sac, envs, stream, device, deterministic: bool, seeds, max_steps: int = 1000):
    """One episode per agent in its own env (agent n's policy acts in envs[n], reset with seeds[n]); or, where
    envs[n] and seeds[n] are lists of K, K episodes per agent, all stepped together (one policy call per step).

    Returns per agent: (undiscounted return, rewards, Q(s_t, a_t), log pi(a_t|s_t)) (log pi: NaN if deterministic),
    a list of K of them where envs[n] is a list. A stochastic policy's noise comes from `stream` (streams.Stream)."""
    batched = isinstance(envs[0], (list, tuple))
    grid = [list(e) for e in envs] if batched else [[e] for e in envs]
    seed_grid = [list(s) for s in seeds] if batched else [[s] for s in seeds]
    n, k = len(grid), len(grid[0])
    obs = np.stack([[env.reset(seed=s)[0] for env, s in zip(row, ss)] for row, ss in zip(grid, seed_grid)])
    alive = np.ones((n, k), bool)
    rewards = [[[] for _ in range(k)] for _ in range(n)]
    qs = [[[] for _ in range(k)] for _ in range(n)]
    log_probs = [[[] for _ in range(k)] for _ in range(n)]
    for _ in range(max_steps):
        o = torch.as_tensor(obs, device=device)  # [N, K, obs]: the K episodes are the batch axis
        noise = None if deterministic else stream.normal(k, sac.act_dim)
        act, log_prob = sac.actor(o, noise)
        q = sac.critic(o, act).mean(1)
        log_prob = torch.full_like(q, float("nan")) if log_prob is None else log_prob
        act_np, q_np, lp_np = act.cpu().numpy(), q.cpu().numpy(), log_prob.cpu().numpy()
        # A diverged actor (non-finite weights) acts zero: a NaN control would stop the physics engine, and the
        # rollout's Q (then NaN too) already says what happened.
        act_np = np.where(np.isfinite(act_np), act_np, 0.0)
        for i, j in zip(*np.nonzero(alive)):
            obs[i, j], r, term, trunc, _ = grid[i][j].step(act_np[i, j])
            rewards[i][j].append(r)
            qs[i][j].append(float(q_np[i, j]))
            log_probs[i][j].append(float(lp_np[i, j]))
            alive[i, j] = not (term or trunc)
        if not alive.any():
            break
    out = [[(float(sum(r)), r, q, lp) for r, q, lp in zip(*per)] for per in zip(rewards, qs, log_probs)]
    return out if batched else [episodes[0] for episodes in out]


def monte_carlo(sac, envs, stream, device, gammas, seeds) -> dict:
    """Q on the policy's own rollout states vs their Monte Carlo return, per agent.

    mc_return counts rewards only (the paper's comparison). mc_soft_return is what the soft
    critic actually estimates, the entropy bonus of every later step included:
        Q_soft(s_t, a_t) = r_t + sum_{k>=1} gamma^k (r_{t+k} - alpha log pi(a_{t+k}|s_{t+k})).
    Early in training (large alpha) the bonus alone can put Q far above mc_return without
    any overestimation; at high UTD the temperature falls and the gap that stays is real."""
    out = {"q_rollout": [], "mc_return": [], "mc_soft_return": [], "q_over_mc": []}
    alphas = sac.log_alpha.exp().tolist()
    results = rollout(sac, envs, stream, device, False, seeds)
    for (_, rewards, qs, log_probs), gamma, alpha in zip(results, gammas, alphas):
        half = max(1, len(rewards) // 2)
        bonus = -alpha * np.asarray(log_probs)
        soft = sac.fn.discounted_returns(np.asarray(rewards) + bonus, gamma) - bonus  # no bonus for a_t itself
        q, g = float(np.mean(qs[:half])), float(np.mean(sac.fn.discounted_returns(rewards, gamma)[:half]))
        out["q_rollout"].append(q)
        out["mc_return"].append(g)
        out["mc_soft_return"].append(float(np.mean(soft[:half])))
        out["q_over_mc"].append(q / g if abs(g) > 1e-8 else float("nan"))
    return out
