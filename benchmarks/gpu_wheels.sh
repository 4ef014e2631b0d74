#!/usr/bin/env bash
# Download, on a machine with internet, the wheels that the GPU machine lacks for survseg's
# GPU checks (benchmarks/gpu.sh): its image has Python 3.12, torch (CUDA), numpy, scipy,
# pandas, scikit-learn (maybe another version), joblib and tqdm, but not scikit-survival,
# fastrad or pyradiomics. They go to .whl/ in the repository root (ignored by git); name
# .whl in the device tool's `carry`. About 20 MB without pyradiomics; --radiomics adds
# pyradiomics, SimpleITK and PyWavelets (about 60 MB more: over the 64 MiB a call carries
# together with the tree, so run the radiomics parity in a call of its own if needed).
set -euo pipefail
cd "$(git rev-parse --show-toplevel)"
grep -qx "/.whl/" .gitignore || echo "/.whl/" >> .gitignore
mkdir -p .whl
plat=(--platform manylinux_2_28_x86_64 --platform manylinux_2_27_x86_64
      --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64
      --platform manylinux1_x86_64 --platform any)
get() {
  python3 -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 \
    --implementation cp "${plat[@]}" -d .whl "$@"
}
# scikit-survival 0.28 needs scikit-learn >=1.9,<1.10 (DEPENDENCIES.md)
get scikit-survival==0.28.0 scikit-learn==1.9.1 ecos osqp numexpr narwhals
# fastrad 1.0.0 is the version checked against pyradiomics here; 1.2.0 (Python >= 3.12) also
# imports SimpleITK and loguru at import time
get fastrad==1.0.0 pydicom
if [[ "${1:-}" == "--radiomics" ]]; then
  get pyradiomics-bhklab SimpleITK PyWavelets
fi
ls -la .whl
du -sh .whl
