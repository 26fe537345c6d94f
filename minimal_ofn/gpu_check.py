"""The GPU check: the package's CUDA path run for real, in one command of under 8 minutes.

    python -m minimal_ofn.gpu_check [--out docs/gpu.md] [--quick]

On a CUDA machine it
  1. runs the tests whose runs take Config(device="auto"), which is CUDA there (TESTS);
  2. checks the compiled update (Config(compile="update"): CUDA graphs on a GPU) equal to the eager one
     on a mixed stack (baseline, OFN, dropout + LayerNorm, beta1 = 0) over a few updates;
  3. measures ms per agent-update at paper size (2 x 256, batch 256) for 1, 10, 100 agents, eager and compiled;
  4. trains a 20-agent stack for 2,000 env steps on dmc:cheetah-run and dmc:dog-run (HalfCheetah-v5 where
     dm_control is missing), end to end;
  5. reports the peak GPU memory, and writes all of it to docs/gpu.md.
Without CUDA it says so in one line and exits with status 1.
tools/gpu_carry.sh builds the wheels this needs beyond torch and prints the device command.
"""

import argparse
import platform
import subprocess
import sys
import time
from pathlib import Path

import torch

TESTS = ["tests/test_compiled.py", "tests/test_sac.py", "tests/test_train.py"]
TEST_SECONDS = 200  # of the 8 minutes; a test run cut short is reported as such, and the check goes on
AGENTS = (1, 10, 100)
MIXED = [{}, {"ofn": True}, {"critic_dropout": 0.01, "critic_layer_norm": True}, {"critic_beta1": 0.0}]


def no_cuda_line() -> str | None:
    if torch.cuda.is_available():
        return None
    why = "this torch is a CPU build" if torch.version.cuda is None else "no GPU is visible"
    return f"gpu_check: no CUDA device here ({why}, torch {torch.__version__}); nothing to check, run it on a GPU"


def _paper(device="cuda", **changes):
    from .config import preset

    return preset("paper", device=device, **changes)


def _batch(n, obs_dim, act_dim, batch, seed=0, device="cuda"):
    g = torch.Generator(device=device).manual_seed(seed)
    r = lambda *s: torch.randn(n, batch, *s, generator=g, device=device)  # noqa: E731
    return {"obs": r(obs_dim), "action": r(act_dim).tanh(), "reward": r(), "next_obs": r(obs_dim),
            "terminated": (r() > 2).float()}


def _sac(configs, obs_dim, act_dim):
    from .sac import SAC

    device = configs[0].resolved_device()
    gens = [torch.Generator(device=device).manual_seed(c.seed) for c in configs]
    return SAC(configs, obs_dim, act_dim, device, gens)


def compiled_equals_eager(updates: int = 5) -> str:
    """Max relative difference of every state tensor, compiled against eager, on the MIXED stack."""
    configs = [_paper(seed=i, **ch) for i, ch in enumerate(MIXED)]
    eager, compiled = _sac([c.replace(compile="off") for c in configs], 17, 6), _sac(
        [c.replace(compile="update") for c in configs], 17, 6)
    for k in range(updates):
        batch = _batch(len(configs), 17, 6, 256, seed=k)
        eager.update(batch)
        compiled.update(batch)
    worst = max(float(((a - b).abs().max() / a.abs().max().clamp_min(1e-6)))
                for a, b in zip(eager.state_tensors(), compiled.state_tensors()) if a.is_floating_point())
    ok = worst < 1e-3
    return f"compiled (CUDA graphs) vs eager, {len(configs)}-agent mixed stack, {updates} updates: max relative " \
           f"difference {worst:.2e} ({'equal within 1e-3' if ok else 'NOT equal'})"


def _sync(device):
    if torch.device(device).type == "cuda":
        torch.cuda.synchronize()


def ms_per_agent_update(n: int, compile: str, repeats: int = 20, device="cuda") -> float:
    sac = _sac([_paper(device, seed=i, compile=compile) for i in range(n)], 223, 38)  # dog's shapes
    batch = _batch(n, 223, 38, 256, device=device)
    for _ in range(5):  # the compile and CUDA-graph capture happen here
        sac.update(batch)
    _sync(device)
    start = time.perf_counter()
    for _ in range(repeats):
        sac.update(batch)
    _sync(device)
    return 1e3 * (time.perf_counter() - start) / repeats / n


def end_to_end(env: str, agents: int = 20, steps: int = 2000, device="cuda", **changes) -> str:
    from .config import Config
    from .train import train

    cfg = Config(env=env, device=device, steps=steps, seed_steps=steps // 2, utd=1, log_every=steps // 2,
                 eval_every=steps, mc_every=steps, checkpoint_every=steps, **changes)
    start = time.perf_counter()
    rows = train([cfg.replace(seed=s) for s in range(agents)], progress=False)
    wall = time.perf_counter() - start
    returns = [r[-1]["eval_return"] for r in rows]
    return f"{env}: {agents} agents x {steps} steps in {wall:.0f} s ({agents * steps / wall:,.0f} env steps/s, " \
           f"mean eval return {sum(returns) / len(returns):.1f})"


def run_tests() -> str:
    """pytest's last line for TESTS (their runs take device "auto": CUDA here), or how far it got in TEST_SECONDS."""
    try:
        test = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", *TESTS],
                              capture_output=True, text=True, timeout=TEST_SECONDS)
    except subprocess.TimeoutExpired as err:
        out = err.stdout.decode() if isinstance(err.stdout, bytes) else (err.stdout or "")
        return f"cut at {TEST_SECONDS} s after {out.count('.')} passed, {out.count('F')} failed"
    lines = test.stdout.strip().splitlines()
    failed = [line for line in lines if line.startswith("FAILED")]
    return "; ".join([lines[-1] if lines else test.stderr[-300:], *failed])


def envs_to_run() -> list[str]:
    import importlib.util

    return ["dmc:cheetah-run", "dmc:dog-run"] if importlib.util.find_spec("dm_control") else ["HalfCheetah-v5"]


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m minimal_ofn.gpu_check", description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", default="docs/gpu.md", help="where the report goes (default docs/gpu.md)")
    parser.add_argument("--quick", action="store_true", help="skip the tests and the 100-agent rows")
    args = parser.parse_args(argv)
    line = no_cuda_line()
    if line:
        print(line)
        return 1
    started = time.perf_counter()
    lines = ["# GPU check\n", f"`python -m minimal_ofn.gpu_check` on {torch.cuda.get_device_name()}, torch "
             f"{torch.__version__} (CUDA {torch.version.cuda}), Python {platform.python_version()}, "
             f"{time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}.\n"]

    def say(text):
        print(text, flush=True)
        lines.append(f"- {text}")

    if not args.quick:
        say(f"tests on CUDA ({' '.join(TESTS)}): {run_tests()}")
    say(compiled_equals_eager())
    lines.append("\n| agents | eager ms / agent-update | compiled ms / agent-update |\n| --- | --- | --- |")
    for n in AGENTS if not args.quick else AGENTS[:2]:
        eager, compiled = ms_per_agent_update(n, "off"), ms_per_agent_update(n, "update")
        print(f"{n} agents: eager {eager:.3f}, compiled {compiled:.3f} ms per agent-update", flush=True)
        lines.append(f"| {n} | {eager:.3f} | {compiled:.3f} |")
    lines.append("")
    for env in envs_to_run():
        say(end_to_end(env))
    say(f"peak GPU memory: {torch.cuda.max_memory_allocated() / 2**30:.2f} GiB; whole check {time.perf_counter() - started:.0f} s")
    Path(args.out).write_text("\n".join(lines) + "\n")
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
