#!/usr/bin/env bash
# Install Horovod 0.28.1 (PyTorch + Gloo, CPU or GPU) into the virtualenv of $1 (default .venv).
#
# PyPI's 0.28.1 sdist builds against torch >= 2.1 once its CMake files ask for C++17 instead of
# C++14.  The built wheel is cached outside the repository ($SEAICE_WHEEL_CACHE, default
# ~/.cache/seaice-wheels) and reused: the first build takes 3-15 min on 2 cores, later installs
# seconds.  Set HOROVOD_GPU_OPERATIONS=NCCL (with CUDA present) before the first build for a
# GPU wheel; the cache key includes the torch version and the GPU setting.
set -euo pipefail
VENV=${1:-.venv}
PY="$(cd "$VENV/bin" && pwd)/python"
CONSTRAINTS="$(pwd)/constraints.txt"
VERSION=0.28.1
CACHE=$(realpath -m "${SEAICE_WHEEL_CACHE:-$HOME/.cache/seaice-wheels}")
TORCH=$("$PY" -c 'import torch; print(torch.__version__.replace("+", "_"))')
FLAVOUR=${HOROVOD_GPU_OPERATIONS:+gpu}
KEY="$CACHE/horovod-$VERSION-torch$TORCH-${FLAVOUR:-cpu}"

if "$PY" -c 'import horovod.torch' 2>/dev/null; then
    exit 0
fi
# build tools (CMake 4 refuses the old cmake_minimum_required of Horovod's third-party code) and
# Horovod's run-time dependencies
"$PY" -m pip install --quiet -c "$CONSTRAINTS" "cmake==3.31.10" "cloudpickle==3.1.3" packaging psutil pyyaml
if ! ls "$KEY"/horovod-*.whl >/dev/null 2>&1; then
    echo "building Horovod $VERSION for torch $TORCH (one time, 3-15 min; cached in $KEY)" >&2
    work=$(mktemp -d)
    trap 'rm -rf "$work"' EXIT
    "$PY" -m pip download --quiet --no-deps --no-binary :all: "horovod==$VERSION" -d "$work"
    tar -xzf "$work"/horovod-$VERSION.tar.gz -C "$work"
    src="$work/horovod-$VERSION"
    sed -i 's/set(CMAKE_CXX_STANDARD 14)/set(CMAKE_CXX_STANDARD 17)/' "$src/CMakeLists.txt" \
        "$src/horovod/torch/CMakeLists.txt"
    grep -q 'CMAKE_CXX_STANDARD 17' "$src/horovod/torch/CMakeLists.txt"
    mkdir -p "$KEY.partial"
    (cd "$src" && PATH="$(dirname "$PY"):$PATH" \
        HOROVOD_WITH_PYTORCH=1 HOROVOD_WITH_GLOO=1 HOROVOD_WITHOUT_TENSORFLOW=1 \
        HOROVOD_WITHOUT_MXNET=1 HOROVOD_WITHOUT_MPI=1 MAKEFLAGS="-j$(nproc)" \
        "$PY" -m pip wheel --quiet --no-deps --no-build-isolation . -w "$KEY.partial")
    rm -rf "$KEY"
    mv "$KEY.partial" "$KEY"   # a half-built wheel never sits under the cache key
fi
"$PY" -m pip install --quiet --no-deps "$KEY"/horovod-*.whl
"$PY" -c 'import horovod, horovod.torch as hvd; print("horovod", horovod.__version__, "gloo", hvd.gloo_built())'
