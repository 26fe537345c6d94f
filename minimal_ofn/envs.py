"""Environments: one factory for dm_control suite tasks and gymnasium ids.

    make_env("dmc:cheetah-run", seed)   dm_control suite, domain "cheetah", task "run"
    make_env("Pendulum-v1", seed)       any gymnasium id with a continuous (Box) action space

Either way the result is a gymnasium.Env with a flat float32 observation vector
and actions in [-1, 1]. dm_control tasks end after 1000 steps with discount 1:
that is a *truncation* (the state still has a future, so bootstrap through it);
only a last step with discount 0 is a *termination*.

action_repeat k (the dog literature's knob): each action is applied k times and the
rewards summed, so an episode of T physics steps is T / k agent steps.
"""

import os
import sys

os.environ.setdefault("MUJOCO_GL", "disabled")  # training never renders; set MUJOCO_GL=egl to render

import gymnasium as gym
import numpy as np
from gymnasium.vector import AutoresetMode, SyncVectorEnv

from .envpool import EnvPool

DMC_PREFIX = "dmc:"
SEEDED_MODEL_DOMAINS = {"lqr"}  # suite domains that generate their MuJoCo model from the seed: rebuilt at each seed
EXAMPLES = "dmc:cheetah-run, dmc:walker-walk, dmc:dog-run, Pendulum-v1, HalfCheetah-v5"


def _mujoco_warning(message: str) -> None:
    """MuJoCo's warnings on stderr, without a MUJOCO_LOG.TXT in the working folder (its default handler writes
    one), and without the deprecation of `settotalmass` that gymnasium's own HalfCheetah XML still uses."""
    if "settotalmass" not in message:
        print(f"MuJoCo warning: {message}", file=sys.stderr)


try:
    import mujoco

    mujoco.set_mju_user_warning(_mujoco_warning)
except ImportError:  # the gymnasium ids that need no MuJoCo still work
    pass


class DMCEnv(gym.Env):
    """A dm_control suite task as a gymnasium.Env (flat float32 observations)."""

    metadata = {"render_modes": ["rgb_array"]}

    def __init__(self, domain: str, task: str, seed: int | None = None, render_mode: str | None = None):
        self.domain, self.task, self.render_mode = domain, task, render_mode
        self._load(seed)
        spec = self._env.action_spec()
        self._low, self._high = spec.minimum.astype(np.float64), spec.maximum.astype(np.float64)
        dim = sum(int(np.prod(v.shape)) for v in self._env.observation_spec().values())
        self.observation_space = gym.spaces.Box(-np.inf, np.inf, (dim,), np.float32)
        self.action_space = gym.spaces.Box(-1.0, 1.0, spec.shape, np.float32)

    def _load(self, seed):
        from absl import logging as absl_logging
        from dm_control import suite  # imported here: loading MuJoCo is only paid for DMC tasks

        absl_logging.set_verbosity(absl_logging.ERROR)  # silences MuJoCo's model-compiler deprecation notes

        # The task's RandomState draws the initial states; seeding means building it anew.
        self._env = suite.load(self.domain, self.task, task_kwargs={"random": seed})

    def _obs(self, timestep) -> np.ndarray:
        return np.concatenate([np.asarray(v, np.float32).ravel() for v in timestep.observation.values()])

    def reset(self, *, seed=None, options=None):
        super().reset(seed=seed)
        if seed is not None and self.domain in SEEDED_MODEL_DOMAINS:
            self._load(seed)
        elif seed is not None:
            # A new RandomState in the built task is the same episode as a task built anew with this seed (the
            # physics is reset whole at every episode; tests/test_envs_replay_diagnostics.py checks it), without
            # the ~60 ms of compiling the model's XML again at each evaluation and Monte Carlo rollout.
            self._env.task._random = np.random.RandomState(seed)
        return self._obs(self._env.reset()), {}

    def step(self, action):
        # Map [-1, 1] onto the task's bounds (the identity for all suite tasks today).
        action = self._low + (np.asarray(action, np.float64) + 1.0) * 0.5 * (self._high - self._low)
        ts = self._env.step(np.clip(action, self._low, self._high))
        terminated = ts.last() and ts.discount == 0.0
        truncated = ts.last() and not terminated
        return self._obs(ts), float(ts.reward or 0.0), terminated, truncated, {}

    def render(self):
        return self._env.physics.render(height=240, width=320, camera_id=0)


class UnitActionFloatObs(gym.Wrapper):
    """Actions in [-1, 1] mapped linearly onto the env's bounds; observations flattened to float32.

    (gymnasium's RescaleAction and DtypeObservation do the same but hold closures that
    cannot be pickled, and checkpoints pickle the environments to resume mid-episode.)"""

    def __init__(self, env):
        super().__init__(env)
        self._low, self._high = env.action_space.low.astype(np.float64), env.action_space.high.astype(np.float64)
        dim = gym.spaces.flatdim(env.observation_space)
        self.observation_space = gym.spaces.Box(-np.inf, np.inf, (dim,), np.float32)
        self.action_space = gym.spaces.Box(-1.0, 1.0, env.action_space.shape, np.float32)

    def _obs(self, obs):
        return np.asarray(gym.spaces.flatten(self.env.observation_space, obs), np.float32)

    def reset(self, **kwargs):
        obs, info = self.env.reset(**kwargs)
        return self._obs(obs), info

    def step(self, action):
        action = self._low + (np.asarray(action, np.float64) + 1.0) * 0.5 * (self._high - self._low)
        obs, reward, terminated, truncated, info = self.env.step(action.astype(self.env.action_space.dtype))
        return self._obs(obs), float(reward), terminated, truncated, info


class ActionRepeat(gym.Wrapper):
    """Apply each action k times, summing the rewards, until the episode ends."""

    def __init__(self, env, k: int):
        super().__init__(env)
        self.k = k

    def step(self, action):
        total = 0.0
        for _ in range(self.k):
            obs, reward, terminated, truncated, info = self.env.step(action)
            total += reward
            if terminated or truncated:
                break
        return obs, total, terminated, truncated, info


def _dmc_tasks() -> list[str]:
    from dm_control import suite

    return [f"{DMC_PREFIX}{d}-{t}" for d, t in suite.ALL_TASKS]


def make_env(env_id: str, seed: int | None = None, action_repeat: int = 1) -> gym.Env:
    """Build one environment; raise ValueError naming valid ids when env_id is unknown."""
    if not isinstance(action_repeat, int) or action_repeat < 1:
        raise ValueError(f"action_repeat must be an integer >= 1, got {action_repeat!r}")
    if env_id.startswith(DMC_PREFIX):
        name = env_id[len(DMC_PREFIX):]
        domain, _, task = name.partition("-")
        if f"{DMC_PREFIX}{domain}-{task}" not in _dmc_tasks():
            raise ValueError(f"unknown dm_control task {env_id!r}: write dmc:<domain>-<task>, e.g. {EXAMPLES} "
                             f"(all: python -c 'from dm_control import suite; print(suite.ALL_TASKS)')")
        env = DMCEnv(domain, task, seed)
    else:
        try:
            env = gym.make(env_id)
        except gym.error.Error as err:
            raise ValueError(f"unknown environment {env_id!r} ({type(err).__name__}): ids look like "
                             f"{EXAMPLES}") from None
        if not isinstance(env.action_space, gym.spaces.Box):
            raise ValueError(f"{env_id} has a {type(env.action_space).__name__} action space; SAC here needs a "
                             "continuous (Box) one")
        env = UnitActionFloatObs(env)
    if action_repeat > 1:
        env = ActionRepeat(env, action_repeat)
    env.reset(seed=seed)
    return env


def make_vec_env(env_id: str, seeds: list[int], action_repeat: int = 1, workers: int = 0):
    """One environment per agent, stepped together. Same-step autoreset: when an episode
    ends, step() already returns the next episode's first observation, and the last one
    is in info["final_obs"] (needed as s' for the replay buffer). workers > 0: stepped in
    that many worker processes (envpool.py), with the same results."""
    return stack_envs([make_env(env_id, seed, action_repeat) for seed in seeds], workers)


def stack_envs(envs: list[gym.Env], workers: int = 0):
    """Step existing environments together, serially or in `workers` processes (envpool.py)."""
    if workers > 0:
        return EnvPool(envs, workers)
    return SyncVectorEnv([lambda e=e: e for e in envs], autoreset_mode=AutoresetMode.SAME_STEP)


def env_at(vec, i: int) -> gym.Env:
    """Env i of a stack as it is now (from a worker process: a copy)."""
    return vec.envs[i] if isinstance(vec, SyncVectorEnv) else vec.env(i)
