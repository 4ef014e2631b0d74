#!/usr/bin/env bash
# The GPU checks of survseg in one command, for a session lent a CUDA machine (about 8 min).
#
#   here (with internet):   bash benchmarks/gpu_wheels.sh        # wheels the GPU image lacks
#   device tool:            run(command="bash benchmarks/gpu.sh", carry=[".whl"], timeout_s=600)
#
# 1. the tests marked `gpu` (mixed-precision training of both deep models, CPU/GPU agreement,
#    GPU-pickled estimators on the CPU, fastrad on CUDA when pyradiomics is there);
# 2. benchmarks/gpu.py: AdaMSS 2x112^3 batch 2 and DeepMTS 2x128^3 batch 8 (or the largest
#    that fits), fp32 vs AMP, GPU busy fraction, peak memory, the papers' schedules
#    extrapolated; fastrad vs pyradiomics when both import.
# Results and logs go to $OUT (the device tool's folder that comes back) or benchmarks/results.
set -uo pipefail
export PYTHONUNBUFFERED=1
OUT="${OUT:-benchmarks/results}"
mkdir -p "$OUT"
if [ -d .whl ]; then
  python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade \
    --target /tmp/site .whl/*.whl && export PYTHONPATH="/tmp/site:.${PYTHONPATH:+:$PYTHONPATH}" || exit 1
else
  export PYTHONPATH=".${PYTHONPATH:+:$PYTHONPATH}"
fi
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv | tee "$OUT/gpu_env.txt"
python3 -c "import torch, sklearn, sksurv; print('torch', torch.__version__, 'cuda', torch.cuda.is_available(), 'sklearn', sklearn.__version__, 'sksurv', sksurv.__version__)" | tee -a "$OUT/gpu_env.txt"
# collection errors of modules that need packages absent there (SimpleITK, monai) must not stop the gpu tests
timeout 180 python3 -m pytest -m gpu -q -p no:cacheprovider --continue-on-collection-errors \
  tests/estimators/test_gpu_training.py tests/radiomics/test_backends.py 2>&1 | tee "$OUT/gpu_tests.log"
timeout 360 python3 benchmarks/gpu.py --out "$OUT" 2>&1 | tee "$OUT/gpu_bench.log"
