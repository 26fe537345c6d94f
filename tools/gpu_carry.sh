#!/usr/bin/env bash
# Build what the GPU check needs beyond the GPU machine's torch/numpy/matplotlib/pytest, and print the command.
# Run once from the repository root; then hand the printed command to the device tool's `run` with carry [".whl"].
#   wheels: mujoco 3.17 (27 MB), gymnasium (~1 MB) and its small dependencies, absl-py, tqdm: HalfCheetah-v5 end
#   to end. dm_control (56 MB) does not fit beside them in 64 MiB: the check then runs HalfCheetah-v5 only
#   (gpu_check.envs_to_run); a second run with dm_control's wheel alone in .whl covers cheetah-run and dog-run.
set -euo pipefail
grep -qx '/.whl/' .git/info/exclude 2>/dev/null || echo /.whl/ >> "$(git rev-parse --git-path info/exclude)"
mkdir -p .whl
plat=(--platform manylinux_2_28_x86_64 --platform manylinux_2_27_x86_64 --platform manylinux_2_17_x86_64
      --platform manylinux2014_x86_64 --platform manylinux1_x86_64 --platform any)
for pkg in mujoco==3.17.0 gymnasium==1.4.0 cloudpickle==2.1.0 farama-notifications==0.0.6 typing-extensions==4.16.0 absl-py==2.5.1 glfw==2.11.0 etils==1.15.0 tqdm==4.70.1 imageio pillow; do
  python3 -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 --implementation cp "${plat[@]}" -d .whl "$pkg"
done
du -sh .whl
cat <<'CMD'
command (timeout_s 540, carry [".whl"]):
python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl && export PYTHONPATH=/tmp/site:$PWD MUJOCO_GL=disabled PYTHONUNBUFFERED=1 || exit; set -o pipefail; timeout 500 python3 -m minimal_ofn.gpu_check --out docs/gpu.md 2>&1 | tee $OUT/gpu_check.log; cp docs/gpu.md $OUT/
CMD
