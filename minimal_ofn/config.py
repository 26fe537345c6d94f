"""Every hyperparameter in one dataclass, and the named presets.

Defaults follow the SAC setup of the resets / SR-SAC line of work on DMC
(Nikishin et al. 2022; D'Oro et al. 2023): lr 3e-4 for actor, critic and
temperature, batch 256, 2x256 MLPs, gamma 0.99, tau 0.005, initial temperature 1,
target entropy -|A|/2. The paper's interventions are plain fields, off by default.
"""

import dataclasses
import functools
import inspect
import io
import tokenize
from dataclasses import dataclass

# torch (and optim.py, which needs it) load where they are used: the command line parses its flags first (cli.py).


# "update": sac.py's whole update (forward, backward, optimizer, Polyak) compiled into one graph; on a GPU it also
# uses CUDA graphs. "off": the same update run eagerly. "auto": "update" where it pays, else "off"
# (Config.resolved_compile).
COMPILE_MODES = ("auto", "off", "update")
# compile="auto" compiles a CPU run that plans at least this many lockstep updates, where the compile has paid for
# itself in the bench's rows (docs/speed.md).
AUTO_COMPILE_UPDATES = 20_000


@dataclass
class Config:
    # --- the run
    env: str = "dmc:cheetah-run"  # "dmc:<domain>-<task>" (dm_control suite) or a gymnasium id, e.g. HalfCheetah-v5
    seed: int = 0  # seeds the networks, replay sampling, exploration and the environments
    steps: int = 100_000  # environment steps, random phase included
    utd: int = 1  # update-to-data ratio: gradient updates per environment step
    seed_steps: int = 5_000  # uniformly random actions before learning starts
    device: str = "auto"  # "auto" picks CUDA when present
    action_repeat: int = 1  # each action applied this many times, rewards summed (envs.py); steps count agent steps
    # Worker processes stepping the stack's envs (envpool.py): "auto" uses them when the physics of one lockstep step
    # is slow enough to pay and there are 3 or more cores, "0" steps serially; results are the same either way.
    env_workers: str = "auto"
    # "update": the whole SAC update as one compiled graph (sac.SAC.learn through torch.compile; on a GPU with CUDA
    # graphs): faster per update after a one-time compile, so it pays on long runs (docs/speed.md). "off": the same
    # update, eager. "auto" (the default): "update" for a training run on CPU that plans AUTO_COMPILE_UPDATES
    # updates or more and runs the package's own functions, "off" otherwise (on a GPU, ask for "update").
    compile: str = "auto"
    # --- SAC
    batch_size: int = 256  # transitions per gradient update
    hidden: int = 256  # units per hidden layer, actor and critic
    depth: int = 2  # hidden layers in actor and critic
    gamma: float = 0.99  # discount factor
    tau: float = 0.005  # Polyak rate of the target critic
    actor_lr: float = 3e-4  # Adam learning rate of the actor
    critic_lr: float = 3e-4  # Adam learning rate of the critic
    temperature_lr: float = 3e-4  # Adam learning rate of log alpha
    init_temperature: float = 1.0  # alpha at the start (and after a full reset)
    target_entropy: float | None = None  # the entropy SAC's temperature steers to; None: -|A| / 2
    buffer_size: int | None = None  # replay capacity in transitions; None: hold the whole run
    replay_dtype: str = "float32"  # observations stored in "float32", "float16" or "bfloat16" (half the memory)
    # --- optimizer momentum (tutorial 3)
    optimizer: str = "adam"  # of the actor, and of the critic unless critic_optimizer is set: "adam", "rmsprop", "sgd"
    critic_optimizer: str | None = None  # the critic's own: "adam", "rmsprop" (no momentum) or "sgd" (momentum = critic_beta1)
    critic_beta1: float = 0.9  # first-moment (momentum) decay of the critic's Adam; 0 = no momentum
    actor_beta1: float = 0.9  # first-moment decay of the actor's Adam
    beta2: float = 0.999  # second-moment decay of every Adam
    # --- critic regularization (tutorial 4)
    critic_dropout: float = 0.0  # DroQ-style dropout after each hidden layer
    critic_layer_norm: bool = False  # LayerNorm after dropout, as in DroQ
    critic_l2: float = 0.0  # L2 *loss penalty*: + critic_l2 * sum ||W||^2 on the critic loss
    critic_weight_decay: float = 0.0  # *decoupled* weight decay (AdamW)
    # --- output feature normalization (tutorial 5)
    ofn: bool = False  # output feature normalization on the critic
    # --- resets and priming (tutorial 6)
    reset_every: int = 0  # gradient updates between resets; 0 = never
    # "full": actor, critic, targets, temperature, optimizers; "actor": actor only; "critic_optimizer": the critic's
    # optimizer state only (Adam's m, v), the weights untouched
    reset_kind: str = "full"
    priming_updates: int = 0  # updates on the seed_steps random transitions alone, before training goes on
    # --- logging, evaluation, checkpoints (in environment steps)
    log_every: int = 1_000  # a metrics row (losses, Q diagnostics) every this many steps
    eval_every: int = 10_000  # deterministic evaluation episodes every this many steps
    eval_episodes: int = 1  # episodes per evaluation
    mc_every: int = 0  # Monte Carlo rollouts for the overestimation diagnostic; 0 = at every log
    checkpoint_every: int = 10_000  # an atomic checkpoint.pt every this many steps
    # The replay in checkpoints: "incremental" appends only the new transitions to replay.bin, "full" writes all of
    # it into checkpoint.pt each time, "off" none (such a run cannot resume).
    checkpoint_replay: str = "incremental"

    def resolved_device(self) -> "torch.device":  # noqa: F821
        import torch

        if self.device == "auto":
            return torch.device("cuda" if torch.cuda.is_available() else "cpu")
        try:
            device = torch.device(self.device)
        except RuntimeError:
            raise ValueError(f"device must be auto, cpu, cuda or cuda:<n>, got {self.device!r}") from None
        if device.type == "cuda" and not torch.cuda.is_available():
            why = "this torch is a CPU build" if torch.version.cuda is None else "no GPU is visible"
            raise ValueError(f"device {self.device!r} asked for, but CUDA is not available ({why}, torch "
                             f"{torch.__version__}): use --device cpu, or auto to take CUDA when there is one")
        return device

    def planned_updates(self) -> int:
        """Lockstep updates a whole run makes: utd after each step from seed_steps on (utd.py), priming's first."""
        return max(0, self.steps - max(self.seed_steps, 1) + 1) * self.utd + self.priming_updates

    def resolved_compile(self, functions=None) -> str:
        """The compile mode a training run uses: compile="auto" decided (see the field), the others as they are."""
        if self.compile != "auto":
            return self.compile
        pays = self.planned_updates() >= AUTO_COMPILE_UPDATES and self.resolved_device().type == "cpu"
        return "update" if pays and not functions else "off"

    def validate(self) -> "Config":
        """Raise ValueError with a one-line message for settings that cannot run."""
        from .optim import KINDS
        if not isinstance(self.utd, int) or isinstance(self.utd, bool):
            raise ValueError(f"utd must be an integer >= 1, got {self.utd!r}")
        checks = [
            (self.utd >= 1, f"utd must be an integer >= 1, got {self.utd}"),
            (self.steps > 0, f"steps must be positive, got {self.steps}"),
            (0 <= self.seed_steps <= self.steps, f"seed_steps must be in [0, steps], got {self.seed_steps}"),
            (self.batch_size > 0 and self.hidden > 0 and self.depth > 0, "batch_size, hidden, depth must be positive"),
            (0 <= self.critic_dropout < 1, f"critic_dropout must be in [0, 1), got {self.critic_dropout}"),
            (0 <= self.critic_beta1 < 1 and 0 <= self.actor_beta1 < 1, "beta1 must be in [0, 1)"),
            (self.optimizer in KINDS, f"optimizer must be one of {', '.join(KINDS)}, got {self.optimizer!r}"),
            (self.critic_optimizer in (None, *KINDS),
             f"critic_optimizer must be one of {', '.join(KINDS)}, got {self.critic_optimizer!r}"),
            (self.compile in COMPILE_MODES, f"compile must be one of {', '.join(COMPILE_MODES)}, got {self.compile!r}"),
            (self.reset_kind in ("full", "actor", "critic_optimizer"),
             f"reset_kind must be 'full', 'actor' or 'critic_optimizer', got {self.reset_kind!r}"),
            (min(self.log_every, self.eval_every, self.checkpoint_every) > 0, "log/eval/checkpoint intervals must be > 0"),
            (self.priming_updates >= 0 and self.reset_every >= 0, "priming_updates and reset_every must be >= 0"),
            (self.priming_updates == 0 or self.seed_steps > 0, "priming needs seed_steps > 0 random transitions"),
            (isinstance(self.action_repeat, int) and self.action_repeat >= 1,
             f"action_repeat must be an integer >= 1, got {self.action_repeat!r}"),
            (str(self.env_workers) == "auto" or str(self.env_workers).isdigit(),
             f"env_workers must be auto or a number >= 0, got {self.env_workers!r}"),
            (self.replay_dtype in ("float32", "float16", "bfloat16"),
             f"replay_dtype must be float32, float16 or bfloat16, got {self.replay_dtype!r}"),
            (self.checkpoint_replay in ("incremental", "full", "off"),
             f"checkpoint_replay must be incremental, full or off, got {self.checkpoint_replay!r}"),
        ]
        for ok, message in checks:
            if not ok:
                raise ValueError(message)
        self.resolved_device()
        return self

    def replace(self, **changes) -> "Config":
        return dataclasses.replace(self, **changes)

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, saved: dict) -> "Config":
        """A Config from a run's config.json. Fields the package has since removed are dropped while they hold the
        value that changed nothing (REMOVED); any other field it does not know is a one-line error."""
        saved = dict(saved)
        for name, inert in REMOVED.items():
            if name in saved and saved[name] in inert:
                del saved[name]
        unknown = sorted(set(saved) - set(cls.__dataclass_fields__))
        if unknown:
            raise ValueError(f"this config.json sets {', '.join(unknown)}, which this version of minimal_ofn does not "
                             "have (an older or newer run): use the version that wrote it")
        if saved.get("compile") not in (None, *COMPILE_MODES):  # the forward-only modes of older versions
            saved["compile"] = "off"
        return cls(**saved)


# Fields older versions wrote into config.json, with the values under which they changed nothing.
REMOVED = {"actor_ofn": (False,)}


@functools.cache
def field_help(cls=None) -> dict:
    """{field: help text} for every field of a dataclass (default Config): the comment lines just above it, then the
    one beside it. The comments in the class are the one place a field is described; --help reads them here."""
    cls = Config if cls is None else cls
    source = inspect.getsource(cls)
    comments = {tok.start[0]: tok.string.lstrip("#").strip()
                for tok in tokenize.generate_tokens(io.StringIO(source).readline) if tok.type == tokenize.COMMENT}
    helps, above = {}, []
    for number, line in enumerate(source.splitlines(), 1):
        name = line.split(":")[0].strip()
        if line.lstrip().startswith("#"):
            above = [] if comments[number].startswith("---") else [*above, comments[number]]
        elif name in cls.__dataclass_fields__ and line.startswith("    " + name):
            helps[name] = " ".join([*above, comments.get(number, "")]).strip()
            above = []
        else:
            above = []
    return {name: helps.get(name, "") for name in cls.__dataclass_fields__}


# Fields that must agree for agents to share one stacked update (the rest may differ per agent).
STACK_FIELDS = (
    "env", "steps", "utd", "seed_steps", "device", "compile", "batch_size", "hidden", "depth", "buffer_size",
    "priming_updates", "log_every", "eval_every", "eval_episodes", "mc_every", "checkpoint_every",
    "action_repeat", "env_workers", "replay_dtype", "checkpoint_replay",
)


def stack_key(cfg: Config) -> tuple:
    return tuple(getattr(cfg, f) for f in STACK_FIELDS)


PRESETS = {
    # The full-size setup of the resets / SR-SAC line of work (GPU territory).
    "paper": Config(steps=500_000, seed_steps=5_000, log_every=5_000, eval_every=10_000, eval_episodes=10,
                    checkpoint_every=25_000),
    # Sized for a small CPU: small nets and batch, the blow-up shows within minutes at UTD 32.
    "tutorial": Config(steps=2_000, seed_steps=1_000, batch_size=128, hidden=128, log_every=250,
                       eval_every=1_000, eval_episodes=1, checkpoint_every=1_000),
}


def preset(name: str, **changes) -> Config:
    if name not in PRESETS:
        raise ValueError(f"unknown preset {name!r}; presets: {', '.join(PRESETS)}")
    return PRESETS[name].replace(**changes)


# The one table of arms: every variant of the update this package runs, as changes to a base config. The
# experiment's variants, the story's arms (minimal_ofn/story/protocol.py), the demo's and the bench's stacks are
# names from it. Each name says what it changes; experiment.variant_changes also joins names with "+"
# ("ofn+priming"), so a name that holds a "+" ("dropout+ln") is one arm of its own.
VARIANTS = {
    "baseline": {},
    "beta1=0": {"critic_beta1": 0.0, "actor_beta1": 0.0},  # Adam without momentum, actor and critic
    "critic_beta1=0": {"critic_beta1": 0.0},  # ... the critic's only
    "critic_beta1=0.5": {"critic_beta1": 0.5},  # the critic's Adam with half its usual momentum
    "rmsprop": {"critic_optimizer": "rmsprop"},  # the critic's Adam second moment alone
    "sgd+momentum": {"critic_optimizer": "sgd", "critic_beta1": 0.9},  # the critic's first moment alone
    "sgd": {"critic_optimizer": "sgd", "critic_beta1": 0.0},  # neither moment
    # Undampened momentum beta multiplies SGD's step by 1 / (1 - beta): these two make matched pairs with the two above
    # (SGD+momentum at lr against SGD at lr / (1 - beta)), so that momentum is compared at the same effective step.
    "sgd+momentum@3e-5": {"critic_optimizer": "sgd", "critic_beta1": 0.9, "critic_lr": 3e-5},
    "sgd@3e-3": {"critic_optimizer": "sgd", "critic_beta1": 0.0, "critic_lr": 3e-3},
    "dropout": {"critic_dropout": 0.01},  # dropout alone, at DroQ's rate
    "ln": {"critic_layer_norm": True},  # LayerNorm alone
    "dropout+ln": {"critic_dropout": 0.01, "critic_layer_norm": True},  # DroQ's critic
    "l2": {"critic_l2": 1e-3},  # an L2 loss penalty on the critic's weights
    "l2=1e-4": {"critic_l2": 1e-4},  # ... at smaller coefficients
    "l2=1e-5": {"critic_l2": 1e-5},
    "adamw": {"critic_weight_decay": 0.1},  # decoupled weight decay (AdamW) on the critic
    "ofn": {"ofn": True},
}
# The mixed stack the speed benchmark times (minimal_ofn/bench): five arms that touch every part of the update.
BENCH_MIX = ("baseline", "beta1=0", "dropout+ln", "adamw", "ofn")


def arms(*names: str) -> dict:
    """{name: Config changes} for these names of VARIANTS, in this order."""
    unknown = [n for n in names if n not in VARIANTS]
    if unknown:
        raise ValueError(f"unknown arm {unknown[0]!r}; arms: {', '.join(VARIANTS)}")
    return {n: dict(VARIANTS[n]) for n in names}
