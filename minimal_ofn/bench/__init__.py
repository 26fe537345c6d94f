"""How fast is one SAC update? Our stacked SAC against SAC written the usual way.

    python -m minimal_ofn.bench [--threads T] [--repeats R] [--quick] [--json] [--device D] [--no-loop]
                                [--default-malloc] [--compiled]
    python -m minimal_ofn.bench --scaling [--quick]      ops and ms per agent-update for 1, 8, 64 agents
    python -m minimal_ofn.bench --contention             whole runs per thread setting, beside a busy process
    python -m minimal_ofn.bench --cleanrl SCRIPT --cleanrl-python PY [--pairs P]   CleanRL's own SAC script

Every row times the FULL update (critic, actor, temperature, Polyak) on
cheetah-run shapes (obs 17, act 6), for our `minimal_ofn.sac.SAC` and, in the
same run at the same size, for a PLAIN REFERENCE: SAC as common single-file
scripts write it (CleanRL's sac_continuous_action.py): two nn.Sequential critics,
an actor module, one torch.optim.Adam per network, zero_grad/backward/step, and
Polyak as a python loop over parameters. N agents of the reference are N such
agents updated one after another; ours updates them in one stacked pass.

Reported per row: lockstep updates/s, ms per agent-update (time of one update of
all N agents / N), and the fraction of the machine's float32 matrix-product
peak, measured in the same run with the same threads:

    fraction of peak = update_flops(...) * N / time per update / peak FLOP/s

Timing: warm-up first, time.perf_counter around a block of updates
(torch.cuda.synchronize() on both sides on a GPU), median over --repeats blocks,
ours and the reference interleaved block by block so that a busy neighbour on a
shared CPU slows both alike. On a CPU with more runnable processes than cores,
set OMP_WAIT_POLICY=PASSIVE (or --threads 1): spinning OpenMP threads otherwise
make every figure many times too slow (the table warns when it sees this).
Two figures split an update's time: its matrix products alone, back to back (a
floor no update of these shapes beats), and its fixed cost, the same update with
batch 8 and 2x8 networks (python, dispatch, autograd: paid whatever the sizes).
Then the story's mixed stack against five baseline agents, tutorial size, eager
update only, per agent-update: what the per-agent switches cost.
Last, an end-to-end figure: env steps/s of the training loop (lockstep.Lockstep).

--compiled adds the compiled whole update (sac.py's, compiled) beside eager sac.py for
one and five agents at paper and tutorial size and for the story's mixed stack
(baseline, beta1=0, dropout+LayerNorm, AdamW decay, OFN), with compile times, and
the end-to-end split (update / env / diagnostics) of the tutorials' stacks.
--scaling: the rows by stack size (bench/scaling.py).
--contention and --cleanrl time whole processes (docs/speed.md says how to set
CleanRL up outside the project's environment).

Files, one job each: timing.py (timing helpers, the stacks timed), floors.py (FLOPs, peak, matrix-product and
step floors), updates.py (update rows against the plain reference, eager against compiled), loops.py (the
training loop end to end), scaling.py (rows by stack size), processes.py (whole-process contention and the
CleanRL yardstick), report.py (the tables), run.py (the command line).
"""
