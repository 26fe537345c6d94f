import os

import torch

# Test networks are tiny: one thread avoids OpenMP spin-waits, which dominate at these sizes on a busy 2-core machine.
torch.set_num_threads(1)
os.environ.setdefault("MUJOCO_GL", "disabled")
