"""SAC for one agent written the usual way (CleanRL's sac_continuous_action.py): the bridge to sac.py.

Two nn.Sequential critics, an actor module, one torch.optim.Adam per network,
zero_grad/backward/step, and Polyak as a python loop over parameters. It is the same
algorithm as sac.SAC.update, whose equations sac.py's docstring states:

    this file                                    sac.py
    torch.min(qf1_next_target, qf2_next_target)  soft_q_target: min over the twin axis of next_q [N, 2, B]
    F.mse_loss(qf1, y) + F.mse_loss(qf2, y)      critic_loss(q, y)
    (alpha * log_pi - min_qf_pi).mean()          actor_loss(log_prob, q_new, alpha)
    -log_alpha.exp() * (log_pi + H).mean()       temperature_loss(log_alpha, log_prob, target_entropy)
    target = tau * param + (1 - tau) * target    polyak_update(target_params, online_params, tau)

sac.py does it for N agents at once (a leading agent axis on every weight), with
per-agent hyperparameters and the paper's switches. tests/test_bench.py holds the two
equal; minimal_ofn/bench times them side by side.
"""

import copy
import math

import torch
import torch.nn.functional as F
from torch import nn

from .networks import LOG_STD_MAX, LOG_STD_MIN


def mlp(sizes, last_relu=False):
    layers = []
    for i, o in zip(sizes[:-1], sizes[1:]):
        layers += [nn.Linear(i, o), nn.ReLU()]
    return nn.Sequential(*(layers if last_relu else layers[:-1]))


class SoftQNetwork(nn.Module):
    def __init__(self, obs_dim, act_dim, hidden, depth):
        super().__init__()
        self.net = mlp([obs_dim + act_dim] + [hidden] * depth + [1])

    def forward(self, obs, act):
        return self.net(torch.cat([obs, act], 1))


class PlainActor(nn.Module):
    def __init__(self, obs_dim, act_dim, hidden, depth):
        super().__init__()
        self.trunk = mlp([obs_dim] + [hidden] * depth, last_relu=True)
        self.fc_mean = nn.Linear(hidden, act_dim)
        self.fc_logstd = nn.Linear(hidden, act_dim)

    def get_action(self, obs, noise=None):
        x = self.trunk(obs)
        mean, log_std = self.fc_mean(x), torch.tanh(self.fc_logstd(x))
        log_std = LOG_STD_MIN + 0.5 * (LOG_STD_MAX - LOG_STD_MIN) * (log_std + 1)
        noise = torch.randn_like(mean) if noise is None else noise
        x_t = mean + log_std.exp() * noise  # Normal(mean, std).rsample()
        log_prob = (-0.5 * noise.pow(2) - log_std - 0.5 * math.log(2 * math.pi)).sum(1)
        # tanh correction as in Spinning Up (CleanRL's log(1 - tanh^2 + 1e-6) differs only when saturated)
        log_prob = log_prob - (2 * (math.log(2) - x_t - F.softplus(-2 * x_t))).sum(1)
        return torch.tanh(x_t), log_prob


class PlainSAC:
    """One SAC agent, written the usual way. update() returns (critic, actor, temperature) losses.

    Two choices make it cheaper than CleanRL verbatim, so as not to flatter ours: the
    critics are frozen during the actor step (as Spinning Up does), and the temperature
    loss reuses the actor step's log pi instead of sampling the actor a third time."""

    def __init__(self, cfg, obs_dim, act_dim, device):
        self.qf1 = SoftQNetwork(obs_dim, act_dim, cfg.hidden, cfg.depth).to(device)
        self.qf2 = SoftQNetwork(obs_dim, act_dim, cfg.hidden, cfg.depth).to(device)
        self.qf1_target, self.qf2_target = copy.deepcopy(self.qf1), copy.deepcopy(self.qf2)
        self.actor = PlainActor(obs_dim, act_dim, cfg.hidden, cfg.depth).to(device)
        self.q_params = list(self.qf1.parameters()) + list(self.qf2.parameters())
        self.q_optimizer = torch.optim.Adam(self.q_params, lr=cfg.critic_lr)
        self.actor_optimizer = torch.optim.Adam(self.actor.parameters(), lr=cfg.actor_lr)
        self.log_alpha = torch.full((1,), math.log(cfg.init_temperature), device=device, requires_grad=True)
        self.a_optimizer = torch.optim.Adam([self.log_alpha], lr=cfg.temperature_lr)
        self.target_entropy = -act_dim / 2 if cfg.target_entropy is None else cfg.target_entropy
        self.gamma, self.tau = cfg.gamma, cfg.tau

    def update(self, data, noise=(None, None)):
        obs, actions, rewards, next_obs, dones = (
            data[k] for k in ("obs", "action", "reward", "next_obs", "terminated"))
        alpha = self.log_alpha.exp().item()
        with torch.no_grad():
            next_state_actions, next_state_log_pi = self.actor.get_action(next_obs, noise[0])
            qf1_next_target = self.qf1_target(next_obs, next_state_actions)
            qf2_next_target = self.qf2_target(next_obs, next_state_actions)
            min_qf_next_target = torch.min(qf1_next_target, qf2_next_target).view(-1) - alpha * next_state_log_pi
            next_q_value = rewards + (1 - dones) * self.gamma * min_qf_next_target
        qf1_a_values = self.qf1(obs, actions).view(-1)
        qf2_a_values = self.qf2(obs, actions).view(-1)
        qf_loss = F.mse_loss(qf1_a_values, next_q_value) + F.mse_loss(qf2_a_values, next_q_value)
        self.q_optimizer.zero_grad()
        qf_loss.backward()
        self.q_optimizer.step()

        for p in self.q_params:
            p.requires_grad_(False)
        pi, log_pi = self.actor.get_action(obs, noise[1])
        min_qf_pi = torch.min(self.qf1(obs, pi), self.qf2(obs, pi)).view(-1)
        actor_loss = (alpha * log_pi - min_qf_pi).mean()
        self.actor_optimizer.zero_grad()
        actor_loss.backward()
        self.actor_optimizer.step()
        for p in self.q_params:
            p.requires_grad_(True)

        alpha_loss = (-self.log_alpha.exp() * (log_pi.detach() + self.target_entropy)).mean()
        self.a_optimizer.zero_grad()
        alpha_loss.backward()
        self.a_optimizer.step()

        for net, target in ((self.qf1, self.qf1_target), (self.qf2, self.qf2_target)):
            for param, target_param in zip(net.parameters(), target.parameters()):
                target_param.data.copy_(self.tau * param.data + (1 - self.tau) * target_param.data)
        return qf_loss.detach(), actor_loss.detach(), alpha_loss.detach()
