"""Plausible learner answers, as the source a learner would type: wrong ones (each aimed at one check) and
correct ones written differently from the package (each must keep full marks). Used by tests/test_grade.py,
both directly (the checks on a function defined here) and through the sandbox (the same source graded)."""

HEADER = "import math\nimport csv\nfrom pathlib import Path\nimport numpy as np\nimport torch\nimport torch.nn.functional as F\n"

# (exercise, part, source defining a function named `part`, the check that must fail, a phrase of its hint)
WRONG = [
    # ---- soft_q_target: missing (1 - done), wrong reduction, wrong axis, wrong sign, entropy outside gamma, in place
    ("01_sac_utd1", "soft_q_target", """
def soft_q_target(reward, terminated, next_q, next_log_prob, alpha, gamma):
    return reward + gamma * (next_q.min(dim=1).values - alpha * next_log_prob)
""", "target_does_not_bootstrap_from_terminal_states", "reward alone"),
    ("01_sac_utd1", "soft_q_target", """
def soft_q_target(reward, terminated, next_q, next_log_prob, alpha, gamma):
    return reward + gamma * (1 - terminated) * (next_q.max(dim=1).values - alpha * next_log_prob)
""", "target_takes_the_smaller_twin", "larger"),
    ("01_sac_utd1", "soft_q_target", """
def soft_q_target(reward, terminated, next_q, next_log_prob, alpha, gamma):
    return reward + gamma * (1 - terminated) * (next_q.mean(dim=1) - alpha * next_log_prob)
""", "target_takes_the_smaller_twin", "averaged"),
    ("01_sac_utd1", "soft_q_target", """
def soft_q_target(reward, terminated, next_q, next_log_prob, alpha, gamma):
    return reward + gamma * (1 - terminated) * (next_q.min(dim=0).values - alpha * next_log_prob)
""", "target_takes_the_smaller_twin", "twin critics on axis 1"),
    ("01_sac_utd1", "soft_q_target", """
def soft_q_target(reward, terminated, next_q, next_log_prob, alpha, gamma):
    return reward + gamma * (1 - terminated) * (next_q.min(dim=1).values + alpha * next_log_prob)
""", "target_subtracts_the_entropy_term", "sign"),
    ("01_sac_utd1", "soft_q_target", """
def soft_q_target(reward, terminated, next_q, next_log_prob, alpha, gamma):
    return reward + gamma * (1 - terminated) * next_q.min(dim=1).values - alpha * next_log_prob
""", "target_subtracts_the_entropy_term", "inside the gamma"),
    ("01_sac_utd1", "soft_q_target", """
def soft_q_target(reward, terminated, next_q, next_log_prob, alpha, gamma):
    reward += gamma * (1 - terminated) * (next_q.min(dim=1).values - alpha * next_log_prob)
    return reward
""", "target_matches_the_reference_per_agent", "in place"),
    # ---- polyak_update: tau on the wrong side, not in place, one tau for all agents
    ("01_sac_utd1", "polyak_update", """
@torch.no_grad()
def polyak_update(target_params, online_params, tau):
    for t, p in zip(target_params, online_params):
        w = tau.view(-1, *([1] * (t.dim() - 1)))
        t.mul_(w).add_((1 - w) * p)
""", "polyak_moves_the_target_a_step_tau_toward_the_online_network", "wrong side"),
    ("01_sac_utd1", "polyak_update", """
def polyak_update(target_params, online_params, tau):
    for t, p in zip(target_params, online_params):
        t = (1 - tau.view(-1, *([1] * (t.dim() - 1)))) * t + tau.view(-1, *([1] * (t.dim() - 1))) * p
""", "polyak_moves_the_target_a_step_tau_toward_the_online_network", "in place"),
    ("01_sac_utd1", "polyak_update", """
@torch.no_grad()
def polyak_update(target_params, online_params, tau):
    for t, p in zip(target_params, online_params):
        t.lerp_(p, float(tau[0]))
""", "polyak_updates_every_tensor_with_each_agents_tau", "tau[i] act on agent i"),
    ("01_sac_utd1", "polyak_update", """
def polyak_update(target_params, online_params, tau):
    for t, p in zip(target_params, online_params):
        t.lerp_(p, tau.view(-1, *([1] * (t.dim() - 1))))
""", "polyak_works_on_network_parameters", "autograd switched off"),
    # ---- utd_loop: one update per step, updates after all steps, no random phase, off by one, wrong count
    ("02_high_utd", "utd_loop", """
def utd_loop(env_step, update, steps, utd, seed_steps):
    n = 0
    for t in range(1, steps + 1):
        env_step()
        if t >= seed_steps:
            update()
            n += 1
    return n
""", "utd_loop_runs_utd_updates_after_every_env_step", "one update per environment step"),
    ("02_high_utd", "utd_loop", """
def utd_loop(env_step, update, steps, utd, seed_steps):
    for _ in range(steps):
        env_step()
    for _ in range(steps * utd):
        update()
    return steps * utd
""", "utd_loop_runs_utd_updates_after_every_env_step", "right after that step"),
    ("02_high_utd", "utd_loop", """
def utd_loop(env_step, update, steps, utd, seed_steps):
    n = 0
    for t in range(steps):
        env_step()
        for _ in range(utd):
            update()
            n += 1
    return n
""", "utd_loop_waits_for_the_random_phase", "no updates until"),
    ("02_high_utd", "utd_loop", """
def utd_loop(env_step, update, steps, utd, seed_steps):
    n = 0
    for t in range(1, steps + 1):
        env_step()
        if t >= seed_steps - 1:
            for _ in range(utd):
                update()
                n += 1
    return n
""", "utd_loop_waits_for_the_random_phase", "no updates until"),
    ("02_high_utd", "utd_loop", """
def utd_loop(env_step, update, steps, utd, seed_steps):
    for t in range(1, steps + 1):
        env_step()
        if t >= seed_steps:
            for _ in range(utd):
                update()
    return steps * utd
""", "utd_loop_returns_the_number_of_updates", "return the number of updates"),
    # ---- discounted_returns: no discount, forward, reversed, gamma^(t+k), in place, integer dtype
    ("02_high_utd", "discounted_returns", """
def discounted_returns(rewards, gamma):
    return np.cumsum(np.asarray(rewards)[::-1])[::-1]
""", "returns_by_hand", "without discount"),
    ("02_high_utd", "discounted_returns", """
def discounted_returns(rewards, gamma):
    out, running = [], 0.0
    for r in rewards:
        running = r + gamma * running
        out.append(running)
    return np.array(out)
""", "returns_by_hand", "wrong order"),
    ("02_high_utd", "discounted_returns", """
def discounted_returns(rewards, gamma):
    n = len(rewards)
    return np.array([sum(gamma ** k * rewards[k] for k in range(t, n)) for t in range(n)])
""", "returns_by_hand", "relative to t"),
    ("02_high_utd", "discounted_returns", """
def discounted_returns(rewards, gamma):
    running = 0.0
    for t in reversed(range(len(rewards))):
        running = rewards[t] + gamma * running
        rewards[t] = running
    return np.array(rewards)
""", "returns_match_the_recursion", "in place"),
    ("02_high_utd", "discounted_returns", """
def discounted_returns(rewards, gamma):
    out = np.zeros(len(rewards), dtype=int)
    running = 0.0
    for t in reversed(range(len(rewards))):
        running = rewards[t] + gamma * running
        out[t] = running
    return out
""", "returns_by_hand", "should give"),
    # ---- adam_step: beta1 ignored, no bias correction, eps inside the root (0/0 on zeros), t from 0, math.sqrt
    ("03_momentum", "adam_step", """
def adam_step(param, grad, m, v, t, lr, beta1, beta2, eps=1e-8):
    m = 0.9 * m + 0.1 * grad
    v = beta2 * v + (1 - beta2) * grad * grad
    return param - lr * (m / (1 - 0.9 ** t)) / ((v / (1 - beta2 ** t)).sqrt() + eps), m, v
""", "adam_without_momentum_uses_the_current_gradient", "still has momentum"),
    ("03_momentum", "adam_step", """
def adam_step(param, grad, m, v, t, lr, beta1, beta2, eps=1e-8):
    m = beta1 * m + (1 - beta1) * grad
    v = beta2 * v + (1 - beta2) * grad * grad
    return param - lr * m / (v.sqrt() + eps), m, v
""", "adam_first_step_has_size_lr", "bias-corrected"),
    ("03_momentum", "adam_step", """
def adam_step(param, grad, m, v, t, lr, beta1, beta2, eps=1e-8):
    m = beta1 * m + (1 - beta1) * grad
    v = beta2 * v + (1 - beta2) * grad * grad
    m_hat, v_hat = m / (1 - beta1 ** t), v / (1 - beta2 ** t)
    return param - lr * m_hat / v_hat.sqrt() + eps, m, v
""", "adam_survives_exact_zero_gradients", "0 / 0"),
    ("03_momentum", "adam_step", """
def adam_step(param, grad, m, v, t, lr, beta1, beta2, eps=1e-8):
    m = beta1 * m + (1 - beta1) * grad
    v = beta2 * v + (1 - beta2) * grad * grad
    m_hat, v_hat = m / (1 - beta1 ** (t + 1)), v / (1 - beta2 ** (t + 1))
    return param - lr * m_hat / (v_hat.sqrt() + eps), m, v
""", "adam_first_step_has_size_lr", "bias-corrected"),
    ("03_momentum", "adam_step", """
def adam_step(param, grad, m, v, t, lr, beta1, beta2, eps=1e-8):
    m = beta1 * m + (1 - beta1) * grad
    v = beta2 * v + (1 - beta2) * grad * grad
    m_hat, v_hat = m / (1 - float(beta1) ** float(t)), v / (1 - float(beta2) ** float(t))
    return param - lr * m_hat / (v_hat.sqrt() + eps), m, v
""", "adam_takes_hyperparameters_per_agent", "per agent"),
    ("03_momentum", "adam_step", """
def adam_step(param, grad, m, v, t, lr, beta1, beta2, eps=1e-8):
    m = beta1 * m + (1 - beta1) * grad
    v = beta2 * v + (1 - beta2) * grad
    m_hat, v_hat = m / (1 - beta1 ** t), v / (1 - beta2 ** t)
    return param - lr * m_hat / (v_hat.abs().sqrt() + eps), m, v
""", "adam_matches_torch_with_momentum", "moment updates"),
    # ---- without_momentum: one of the two, beta2 too, in place
    ("03_momentum", "without_momentum", """
def without_momentum(cfg):
    return cfg.replace(critic_beta1=0.0)
""", "without_momentum_zeroes_beta1_of_critic_and_actor", "both the critic's and the actor's"),
    ("03_momentum", "without_momentum", """
def without_momentum(cfg):
    return cfg.replace(critic_beta1=0.0, actor_beta1=0.0, beta2=0.0)
""", "without_momentum_zeroes_beta1_of_critic_and_actor", "beta2"),
    ("03_momentum", "without_momentum", """
def without_momentum(cfg):
    cfg.critic_beta1 = cfg.actor_beta1 = 0.0
    return cfg
""", "without_momentum_changes_nothing_else", "in place"),
    # ---- dropout_mask: keep with probability p, unscaled, global stream, <= vs >= is fine (not here)
    ("04_regularization", "dropout_mask", """
def dropout_mask(p, shape, generator):
    return (torch.rand(shape, generator=generator) < p).float() / (1 - p)
""", "mask_drops_a_fraction_p", "probability of dropping"),
    ("04_regularization", "dropout_mask", """
def dropout_mask(p, shape, generator):
    return (torch.rand(shape, generator=generator) >= p).float()
""", "mask_scales_the_kept_units", "not scaled"),
    ("04_regularization", "dropout_mask", """
def dropout_mask(p, shape, generator):
    return (torch.rand(shape) >= p).float() / (1 - p)
""", "mask_draws_from_the_given_generator", "generator"),
    ("04_regularization", "dropout_mask", """
def dropout_mask(p, shape, generator):
    return (torch.rand(shape, generator=generator) >= p).float() * (1 - p)
""", "mask_scales_the_kept_units", "1 / (1 - p)"),
    # ---- decoupled_weight_decay: no lr, subtracts a constant, wrong sign
    ("04_regularization", "decoupled_weight_decay", """
def decoupled_weight_decay(param, lr, weight_decay):
    return param * (1 - weight_decay)
""", "decay_shrinks_each_weight_by_lr_times_wd", "learning rate"),
    ("04_regularization", "decoupled_weight_decay", """
def decoupled_weight_decay(param, lr, weight_decay):
    return param - lr * weight_decay
""", "decay_shrinks_each_weight_by_lr_times_wd", "proportion"),
    ("04_regularization", "decoupled_weight_decay", """
def decoupled_weight_decay(param, lr, weight_decay):
    return param * (1 + lr * weight_decay)
""", "decay_shrinks_each_weight_by_lr_times_wd", "should become"),
    ("04_regularization", "decoupled_weight_decay", """
def decoupled_weight_decay(param, lr, weight_decay):
    return param * (1 - math.prod([lr, weight_decay]) if not hasattr(lr, "shape") else 1 - lr.mean() * weight_decay.mean())
""", "decay_matches_adamw_per_agent", "per agent"),
    # ---- l2_penalty: square root, mean, not per agent, detached
    ("04_regularization", "l2_penalty", """
def l2_penalty(weights, coef):
    return coef * sum(w.flatten(1).norm(dim=1) for w in weights)
""", "penalty_is_coef_times_the_squared_norm", "squared norm"),
    ("04_regularization", "l2_penalty", """
def l2_penalty(weights, coef):
    return coef * sum(w.pow(2).flatten(1).mean(1) for w in weights)
""", "penalty_is_coef_times_the_squared_norm", "do not average"),
    ("04_regularization", "l2_penalty", """
def l2_penalty(weights, coef):
    return coef * sum(w.pow(2).sum() for w in weights)
""", "penalty_is_coef_times_the_squared_norm", "agents must not mix"),
    ("04_regularization", "l2_penalty", """
def l2_penalty(weights, coef):
    return coef * sum(w.detach().pow(2).flatten(1).sum(1) for w in weights)
""", "penalty_gradient_is_two_coef_w", "differentiable"),
    ("04_regularization", "l2_penalty", """
def l2_penalty(weights, coef):
    return coef * sum(w.pow(2).sum(-1).sum(-1) for w in weights)
""", "penalty_is_coef_times_the_squared_norm", "shape [N]"),
    # ---- ofn: over the batch, squared norm, no eps, detached norm, sqrt at 0 in backward, in place
    ("05_ofn", "ofn", """
def ofn(features, eps=1e-12):
    return features / features.norm(dim=-2, keepdim=True).clamp_min(eps)
""", "ofn_gives_each_sample_unit_norm", "over the batch"),
    ("05_ofn", "ofn", """
def ofn(features, eps=1e-12):
    return features / (features.norm(dim=-1, keepdim=True) ** 2).clamp_min(eps)
""", "ofn_gives_each_sample_unit_norm", "not by its square"),
    ("05_ofn", "ofn", """
def ofn(features, eps=1e-12):
    return features / features.norm(dim=-1, keepdim=True)
""", "ofn_survives_all_zero_features", "eps"),
    ("05_ofn", "ofn", """
def ofn(features, eps=1e-12):
    return features / features.norm(dim=-1, keepdim=True).clamp_min(eps).detach()
""", "ofn_passes_gradients_through_the_norm", "do not detach"),
    ("05_ofn", "ofn", """
def ofn(features, eps=1e-12):
    return features / torch.sqrt((features ** 2).sum(-1, keepdim=True)).clamp_min(eps)
""", "ofn_gradients_stay_finite_on_all_zero_features", "sqrt at 0"),
    ("05_ofn", "ofn", """
def ofn(features, eps=1e-12):
    return features.div_(features.norm(dim=-1, keepdim=True).clamp_min(eps))
""", "ofn_survives_all_zero_features", "in place"),
    ("05_ofn", "ofn", """
def ofn(features, eps=1e-12):
    return features / features.norm(dim=0, keepdim=True).clamp_min(eps)
""", "ofn_gives_each_sample_unit_norm", "norm 1"),
    # ---- srank: off by one, delta instead of 1 - delta, squared, nonzero count, not batched
    ("05_ofn", "srank", """
def srank(features, delta=0.01):
    s = torch.linalg.svdvals(features)
    share = s.cumsum(-1) / s.sum(-1, keepdim=True)
    return (share < 1 - delta).sum(-1)
""", "srank_counts_singular_values_to_cover_1_minus_delta", "off by one"),
    ("05_ofn", "srank", """
def srank(features, delta=0.01):
    s = torch.linalg.svdvals(features)
    share = s.cumsum(-1) / s.sum(-1, keepdim=True)
    return (share < delta).sum(-1) + 1
""", "srank_counts_singular_values_to_cover_1_minus_delta", "(1 - delta)"),
    ("05_ofn", "srank", """
def srank(features, delta=0.01):
    s = torch.linalg.svdvals(features) ** 2
    share = s.cumsum(-1) / s.sum(-1, keepdim=True)
    return (share < 1 - delta).sum(-1) + 1
""", "srank_counts_singular_values_to_cover_1_minus_delta", "not their squares"),
    ("05_ofn", "srank", """
def srank(features, delta=0.01):
    return (torch.linalg.svdvals(features) > 1e-6).sum(-1)
""", "srank_counts_singular_values_to_cover_1_minus_delta", "nonzero"),
    ("05_ofn", "srank", """
def srank(features, delta=0.01):
    s = torch.linalg.svdvals(features.reshape(-1, features.shape[-1]))
    share = s.cumsum(-1) / s.sum(-1, keepdim=True)
    return int((share < 1 - delta).sum()) + 1
""", "srank_is_batched_over_leading_axes", "tensor"),
    # ---- prime: one batch for all, one update too many, wrong batch size
    ("06_priming_resets", "prime", """
def prime(buffer, update, updates, batch_size, generators):
    batch = buffer.sample(batch_size, generators)
    for _ in range(updates):
        update(batch)
""", "prime_samples_a_fresh_batch_for_every_update", "new batch"),
    ("06_priming_resets", "prime", """
def prime(buffer, update, updates, batch_size, generators):
    for _ in range(updates + 1):
        update(buffer.sample(batch_size, generators))
""", "prime_runs_exactly_updates_updates", "should call update"),
    ("06_priming_resets", "prime", """
def prime(buffer, update, updates, batch_size, generators):
    for _ in range(updates):
        update(buffer.sample(256, generators))
""", "prime_samples_a_fresh_batch_for_every_update", "batch size"),
    # ---- reset_due: off by one, division by zero, reset at update 0
    ("06_priming_resets", "reset_due", """
def reset_due(reset_every, updates):
    return reset_every > 0 and (updates + 1) % reset_every == 0
""", "reset_every_k_updates", "off by one"),
    ("06_priming_resets", "reset_due", """
def reset_due(reset_every, updates):
    return updates % reset_every == 0
""", "reset_never_when_switched_off", "ZeroDivisionError"),
    ("06_priming_resets", "reset_due", """
def reset_due(reset_every, updates):
    return reset_every > 0 and updates % reset_every == 1
""", "reset_every_k_updates", "very first update"),
    # ---- iqm: median, mean, unsorted, [k:-k] at 3 seeds, sorts in place, a quarter of the mean
    ("07_at_scale", "iqm", """
def iqm(scores):
    return float(np.median(scores))
""", "iqm_averages_the_middle_half", "median"),
    ("07_at_scale", "iqm", """
def iqm(scores):
    return float(np.mean(scores))
""", "iqm_averages_the_middle_half", "plain mean"),
    ("07_at_scale", "iqm", """
def iqm(scores):
    cut = len(scores) // 4
    kept = list(scores)[cut:len(scores) - cut]
    return sum(kept) / len(kept)
""", "iqm_averages_the_middle_half", "sort"),
    ("07_at_scale", "iqm", """
def iqm(scores):
    x = sorted(scores)
    k = len(x) // 4
    return float(np.mean(x[k:-k]))
""", "iqm_of_any_number_of_scores", "fewer than 4"),
    ("07_at_scale", "iqm", """
def iqm(scores):
    scores.sort()
    k = len(scores) // 4
    kept = scores[k:len(scores) - k]
    return sum(kept) / len(kept)
""", "iqm_of_any_number_of_scores", "in place"),
    # ---- final_scores: first row, best so far, only one seed, ignores metric
    ("07_at_scale", "final_scores", """
def final_scores(folder, metric="eval_return"):
    out = {}
    for variant in sorted(Path(folder).iterdir()):
        if variant.is_dir():
            for run in sorted(variant.glob("seed*")):
                with (run / "metrics.csv").open() as f:
                    out.setdefault(variant.name, []).append(float(list(csv.DictReader(f))[0][metric]))
    return out
""", "final_scores_reads_the_last_row_of_every_run", "last row"),
    ("07_at_scale", "final_scores", """
def final_scores(folder, metric="eval_return"):
    out = {}
    for variant in sorted(Path(folder).iterdir()):
        if variant.is_dir():
            for run in sorted(variant.glob("seed*")):
                with (run / "metrics.csv").open() as f:
                    out.setdefault(variant.name, []).append(max(float(r[metric]) for r in csv.DictReader(f)))
    return out
""", "final_scores_reads_the_last_row_of_every_run", "best"),
    ("07_at_scale", "final_scores", """
def final_scores(folder, metric="eval_return"):
    out = {}
    for variant in sorted(Path(folder).iterdir()):
        if variant.is_dir():
            with (variant / "seed0" / "metrics.csv").open() as f:
                out[variant.name] = [float(list(csv.DictReader(f))[-1][metric])]
    return out
""", "final_scores_reads_the_last_row_of_every_run", "seeds"),
    ("07_at_scale", "final_scores", """
def final_scores(folder, metric="eval_return"):
    out = {}
    for variant in sorted(Path(folder).iterdir()):
        if variant.is_dir():
            for run in sorted(variant.glob("seed*")):
                with (run / "metrics.csv").open() as f:
                    out.setdefault(variant.name, []).append(float(list(csv.DictReader(f))[-1]["eval_return"]))
    return out
""", "final_scores_reads_any_metric", "q_rollout"),
]

# (exercise, source defining every graded function of the exercise, written unlike the package)
RIGHT = [
    ("01_sac_utd1", """
def soft_q_target(reward, terminated, next_q, next_log_prob, alpha, gamma):
    q1, q2 = next_q[:, 0], next_q[:, 1]
    not_done = 1 - terminated
    return reward + not_done * gamma * (torch.minimum(q1, q2) - alpha * next_log_prob)

def polyak_update(target_params, online_params, tau):
    with torch.no_grad():
        for t, p in zip(target_params, online_params):
            w = tau.reshape([-1] + [1] * (t.dim() - 1))
            t.mul_(1 - w).add_(w * p)
"""),
    ("02_high_utd", """
def utd_loop(env_step, update, steps, utd, seed_steps):
    n = 0
    for t in range(steps):
        env_step()
        if t >= seed_steps:  # learning starts one step later than the package's: accepted
            for _ in range(utd):
                update()
                n += 1
    return n

def discounted_returns(rewards, gamma):
    out, g = [], 0.0
    for r in reversed(list(rewards)):
        g = r + gamma * g
        out.append(g)
    return np.array(out[::-1])
"""),
    ("02_high_utd", """
def utd_loop(env_step, update, steps, utd, seed_steps):
    count = 0
    t = 0
    while t < steps:
        env_step()
        t += 1
        if t < seed_steps:
            continue
        for _ in range(utd):
            update()
        count += utd
    return count

def discounted_returns(rewards, gamma):
    r = torch.tensor(rewards, dtype=torch.float64)
    out, running = torch.zeros_like(r), torch.tensor(0.0, dtype=torch.float64)
    for t in range(len(r) - 1, -1, -1):
        running = r[t] + gamma * running
        out[t] = running
    return out.numpy()
"""),
    ("03_momentum", """
def adam_step(p, g, m, v, t, lr, b1, b2, eps=1e-8):
    m.mul_(b1).add_((1 - b1) * g)
    v.mul_(b2).add_((1 - b2) * g * g)
    p.sub_(lr * (m / (1 - b1 ** t)) / (torch.sqrt(v / (1 - b2 ** t)) + eps))
    return p, m, v

def without_momentum(cfg):
    import copy
    c = copy.copy(cfg)
    c.critic_beta1 = c.actor_beta1 = 0
    return c
"""),
    ("03_momentum", """
def adam_step(param, grad, m, v, t, lr, beta1, beta2, eps=1e-8):
    m = torch.lerp(grad, m, beta1) if isinstance(beta1, torch.Tensor) else beta1 * m + (1 - beta1) * grad
    v = beta2 * v + (1 - beta2) * grad.square()
    step = lr / (1 - beta1 ** t)
    denom = v.sqrt() / torch.sqrt(torch.as_tensor(1 - beta2 ** t)) + eps
    return param - step * m / denom, m, v

def without_momentum(cfg):
    import dataclasses
    return dataclasses.replace(cfg, actor_beta1=0.0, critic_beta1=0.0)
"""),
    ("04_regularization", """
def dropout_mask(p, shape, generator):
    u = torch.rand(shape, generator=generator)
    return torch.where(u < p, torch.zeros(()), torch.full((), 1.0 / (1.0 - p)))

def decoupled_weight_decay(param, lr, weight_decay):
    return param.mul_(1 - lr * weight_decay)

def l2_penalty(weights, coef):
    total = 0
    for w in weights:
        total = total + (w * w).reshape(w.shape[0], -1).sum(-1)
    return coef * total
"""),
    ("05_ofn", """
def ofn(features, eps=1e-12):
    return features / (torch.linalg.vector_norm(features, dim=-1, keepdim=True) + eps)

def srank(features, delta=0.01):
    s = torch.linalg.svdvals(features)
    share = torch.cumsum(s, -1) / torch.sum(s, -1, keepdim=True)
    return (share >= 1 - delta).float().argmax(-1) + 1
"""),
    ("05_ofn", """
def ofn(features, eps=1e-12):
    return F.normalize(features, dim=-1, eps=eps)

def srank(features, delta=0.01):
    s = torch.linalg.svdvals(features)
    target = (1 - delta) * s.sum(-1, keepdim=True)
    return torch.searchsorted(s.cumsum(-1).contiguous(), target.contiguous()).squeeze(-1) + 1
"""),
    ("06_priming_resets", """
def prime(buffer, update, updates, batch_size, generators):
    k = 0
    while k < updates:
        batch = buffer.sample(batch_size, generators)
        update(batch)
        k += 1

def reset_due(reset_every, updates):
    return bool(reset_every) and updates > 0 and updates % reset_every == 0
"""),
    ("07_at_scale", """
from minimal_ofn.train import load_metrics

def iqm(scores):
    x = sorted(scores)
    k = len(x) // 4
    kept = x[k:len(x) - k]
    return sum(kept) / len(kept)

def final_scores(folder, metric="eval_return"):
    out = {}
    for f in sorted(Path(folder).rglob("metrics.csv")):
        rows = load_metrics(f.parent)
        if rows:
            out.setdefault(f.parent.parent.name, []).append(rows[-1][metric])
    return out
"""),
    ("07_at_scale", """
def iqm(scores):
    a = np.sort(np.array(scores, dtype=np.float64))
    n = a.size
    return np.mean(a[n // 4: n - n // 4])

def final_scores(folder, metric="eval_return"):
    scores = {}
    for run in sorted(Path(folder).glob("*/seed*/metrics.csv")):
        rows = list(csv.DictReader(run.open()))
        if rows:
            scores.setdefault(run.parent.parent.name, []).append(rows[-1][metric])  # strings: accepted
    return scores
"""),
]

# Correct answers a learner may reasonably write (the class 7: equivalent answers pass)
RIGHT += [
    ("04_regularization", """
def dropout_mask(p, shape, generator):
    keep = torch.empty(shape).bernoulli_(1 - p, generator=generator)
    return keep / (1 - p)

def decoupled_weight_decay(param, lr, weight_decay):
    return param - lr * weight_decay * param

def l2_penalty(weights, coef):
    return coef * torch.stack([w.flatten(1).pow(2).sum(-1) for w in weights]).sum(0)
"""),
    ("04_regularization", """
def dropout_mask(p, shape, generator):
    keep = torch.rand(shape, generator=generator) < 1 - p
    return keep.float() / (1 - p)

def decoupled_weight_decay(param, lr, weight_decay):
    with torch.no_grad():
        return param.mul_(1 - lr * weight_decay)

def l2_penalty(weights, coef):
    return sum(coef * torch.linalg.vector_norm(w.flatten(1), dim=1) ** 2 for w in weights)
"""),
    ("07_at_scale", """
import scipy.stats

def iqm(scores):
    return float(scipy.stats.trim_mean(scores, 0.25))

def final_scores(folder, metric="eval_return"):
    out = {}
    for variant in sorted(p for p in Path(folder).iterdir() if p.is_dir()):
        for run in sorted(variant.glob("seed*")):
            rows = load_metrics(run)
            if rows:
                out.setdefault(variant.name, []).append(rows[-1][metric])
    return out
"""),
    ("07_at_scale", """
def iqm(scores):
    x = torch.sort(torch.as_tensor(np.asarray(scores), dtype=torch.float32)).values
    k = len(x) // 4
    return x[k:len(x) - k].mean().item()

def final_scores(folder, metric="eval_return"):
    out = {}
    for f in Path(folder).glob("*/seed*/metrics.csv"):
        with f.open() as handle:
            last = None
            for last in csv.DictReader(handle):
                pass
        if last is not None:
            out.setdefault(f.parent.parent.name, []).append(float(last[metric]))
    return out
"""),
    ("01_sac_utd1", """
def soft_q_target(reward, terminated, next_q, next_log_prob, alpha, gamma):
    v = torch.amin(next_q, dim=1) - alpha * next_log_prob
    return torch.addcmul(reward, gamma * (1 - terminated), v)

@torch.no_grad()
def polyak_update(target_params, online_params, tau):
    for t, p in zip(target_params, online_params):
        w = tau.reshape(tau.shape + (1,) * (t.dim() - 1))
        t.copy_(t + w * (p - t))
"""),
    ("06_priming_resets", """
def prime(buffer, update, updates, batch_size, generators):
    for _ in range(max(0, int(updates))):
        update(buffer.sample(batch_size, generators))

def reset_due(reset_every, updates):
    if reset_every <= 0 or updates <= 0:
        return False
    return updates % reset_every == 0
"""),
]


# ---- the classes (issue 27): each entry must cost its part marks; "side" ones must score 0 for the part
# (exercise, part, source)
CLASSES = {
    "1 probes of another kind than the package passes": [
        ("01_sac_utd1", "polyak_update", """
@torch.no_grad()
def polyak_update(target_params, online_params, tau):
    for i in range(len(target_params)):
        w = tau.view(-1, *([1] * (target_params[i].dim() - 1)))
        target_params[i].lerp_(online_params[i], w)
"""),
        ("02_high_utd", "discounted_returns", """
def discounted_returns(rewards, gamma):
    r = torch.as_tensor(rewards, dtype=torch.float64)
    out = torch.zeros_like(r)
    running = 0.0
    for t in range(len(r) - 1, -1, -1):
        running = r[t] + gamma * running
        out[t] = running
    return out
"""),
        ("04_regularization", "dropout_mask", """
def dropout_mask(p, shape, generator):
    rows, cols = shape[0], shape[-1]
    return (torch.rand(rows, cols, generator=generator) >= p).float().expand(*shape) / (1 - p)
"""),
        ("05_ofn", "ofn", """
def ofn(features, eps=1e-12):
    norm = features.norm(dim=-1, keepdim=True)
    return features / torch.maximum(norm, torch.full(norm.shape, eps))
"""),
        ("01_sac_utd1", "soft_q_target", """
def soft_q_target(reward, terminated, next_q, next_log_prob, alpha, gamma):
    a, g = float(alpha), float(gamma)
    return reward + g * (1 - terminated) * (next_q.min(dim=1).values - a * next_log_prob)
"""),
    ],
    "2 fixed probes and ranges never probed": [
        ("01_sac_utd1", "soft_q_target", """
def soft_q_target(reward, terminated, next_q, next_log_prob, alpha, gamma):
    if tuple(reward.shape) == (3, 4):
        return reward + gamma * (1 - terminated) * (next_q.min(dim=1).values - alpha * next_log_prob)
    return reward
"""),
        ("03_momentum", "adam_step", """
def adam_step(param, grad, m, v, t, lr, beta1, beta2, eps=1e-8):
    m = beta1 * m + (1 - beta1) * grad
    v = beta2 * v + (1 - beta2) * grad * grad
    return param - lr * (m / (1 - beta1 ** t)) / (v / (1 - beta2 ** t) + eps).sqrt(), m, v
"""),
        ("02_high_utd", "utd_loop", """
def utd_loop(env_step, update, steps, utd, seed_steps):
    n = 0
    for t in range(1, steps + 1):
        env_step()
        if t >= abs(seed_steps):
            for _ in range(utd):
                update()
                n += 1
    return n
"""),
        ("06_priming_resets", "reset_due", """
def reset_due(reset_every, updates):
    return reset_every > 0 and updates % reset_every == 0
"""),
        ("07_at_scale", "final_scores", """
def final_scores(folder, metric="eval_return"):
    out = {}
    for run in sorted(Path(folder).glob("*/seed*")):
        with (run / "metrics.csv").open() as f:
            out.setdefault(run.parent.name, []).append(float(list(csv.DictReader(f))[-1][metric]))
    return out
"""),
        ("07_at_scale", "iqm", """
def iqm(scores):
    x = np.asarray(scores, dtype=float)
    lo, hi = np.percentile(x, [25, 75])
    return float(x[(x >= lo) & (x <= hi)].mean())
"""),
    ],
    "3 state across calls": [
        ("04_regularization", "dropout_mask", """
def dropout_mask(p, shape, generator):
    g = torch.Generator()
    g.set_state(generator.get_state())
    return (torch.rand(shape, generator=g) >= p).float() / (1 - p)
"""),
        ("04_regularization", "dropout_mask", """
def dropout_mask(p, shape, generator):
    state = generator.get_state()
    mask = (torch.rand(shape, generator=generator) >= p).float() / (1 - p)
    generator.set_state(state)
    return mask
"""),
        ("06_priming_resets", "prime", """
def prime(buffer, update, updates, batch_size, generators):
    batch = buffer.sample(batch_size, generators)
    for _ in range(updates):
        update(batch)
"""),
    ],
    "4 inputs the learner can change": [
        ("01_sac_utd1", "soft_q_target", """
def soft_q_target(reward, terminated, next_q, next_log_prob, alpha, gamma):
    if isinstance(alpha, torch.Tensor):
        alpha.zero_()
        gamma.zero_()
    return reward.clone()
"""),
        ("03_momentum", "adam_step", """
def adam_step(param, grad, m, v, t, lr, beta1, beta2, eps=1e-8):
    for x in (lr, beta1, beta2):
        if isinstance(x, torch.Tensor):
            x.zero_()
    return param.clone(), m.clone(), v.clone()
"""),
        ("04_regularization", "l2_penalty", """
def l2_penalty(weights, coef):
    for w in weights:
        w.data.zero_()
    return coef * 0.0
"""),
        ("04_regularization", "decoupled_weight_decay", """
def decoupled_weight_decay(param, lr, weight_decay):
    if isinstance(weight_decay, torch.Tensor):
        weight_decay.zero_()
    return param * 1.0
"""),
        ("05_ofn", "ofn", """
def ofn(features, eps=1e-12):
    return features.div_(features.norm(dim=-1, keepdim=True).clamp_min(eps))
"""),
    ],
    "5 side properties alone (side: must score 0 for the part)": [
        ("05_ofn", "ofn", "def ofn(features, eps=1e-12):\n    return features\n"),
        ("05_ofn", "srank", "def srank(features, delta=0.01):\n    return torch.ones(features.shape[:-2])\n"),
        ("03_momentum", "without_momentum", "def without_momentum(cfg):\n    return cfg\n"),
        ("06_priming_resets", "reset_due", "def reset_due(reset_every, updates):\n    return False\n"),
        ("02_high_utd", "utd_loop", "def utd_loop(env_step, update, steps, utd, seed_steps):\n    return 0\n"),
        ("06_priming_resets", "prime", "def prime(buffer, update, updates, batch_size, generators):\n    return None\n"),
        ("01_sac_utd1", "polyak_update", "def polyak_update(target_params, online_params, tau):\n    return None\n"),
        ("04_regularization", "dropout_mask",
         "def dropout_mask(p, shape, generator):\n    return torch.ones(shape)\n"),
        ("07_at_scale", "final_scores", "def final_scores(folder, metric='eval_return'):\n    return {}\n"),
        ("04_regularization", "decoupled_weight_decay",
         "def decoupled_weight_decay(param, lr, weight_decay):\n    return param\n"),
    ],
}

