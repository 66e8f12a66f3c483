#!/bin/sh
# Build the lambda-supervisor layer for Lambda's managed Python runtime: a zip holding
#   lambda-supervisor   the wrapper script (set AWS_LAMBDA_EXEC_WRAPPER=/opt/lambda-supervisor)
#   python/             lambda-supervisor and its dependencies, with wheels for Lambda's platform (/opt/python)
#
#   layer/build.sh [--python 3.12] [--arch x86_64|arm64] [--out FILE]
#
# The compiled dependencies (psutil, simplejson) are platform and Python-version specific, so build one
# layer per runtime version and architecture, and publish it with matching --compatible-runtimes and
# --compatible-architectures. Wheels are manylinux2014 (glibc 2.17), which every Python runtime's OS has.
set -eu

python_version=3.12
arch=x86_64
out=

while [ "$#" -gt 0 ]; do
    case "$1" in
        --python) python_version="$2"; shift 2 ;;
        --arch) arch="$2"; shift 2 ;;
        --out) out="$2"; shift 2 ;;
        -h|--help) sed -n '2,11p' "$0"; exit 0 ;;
        *) echo "build.sh: unknown option $1 (see --help)" >&2; exit 2 ;;
    esac
done

case "$arch" in
    x86_64|amd64) arch=x86_64 ;;
    arm64|aarch64) arch=aarch64 ;;
    *) echo "build.sh: --arch must be x86_64 or arm64, not $arch" >&2; exit 2 ;;
esac
case "$python_version" in
    3.1[1-9]) ;;
    *) echo "build.sh: --python must be 3.11 or later (lambda-supervisor needs python -P), not $python_version" >&2
       exit 2 ;;
esac

here=$(CDPATH= cd -- "$(dirname -- "$0")" && pwd)
repository=$(dirname -- "$here")
python=${PYTHON:-python3}
case "$python" in */*) python=$(CDPATH= cd -- "$(dirname -- "$python")" && pwd)/$(basename -- "$python") ;; esac
[ -n "$out" ] || out="$repository/dist/lambda-supervisor-layer-python$python_version-$arch.zip"
mkdir -p "$(dirname -- "$out")"
out=$(CDPATH= cd -- "$(dirname -- "$out")" && pwd)/$(basename -- "$out")

stage=$(mktemp -d)
trap 'rm -rf "$stage"' EXIT

# lambda-supervisor itself is pure Python: a wheel built here installs anywhere.
"$python" -m pip wheel --quiet --no-deps --wheel-dir "$stage/wheel" "$repository"
# Everything else as binary wheels for Lambda's platform; pip refuses rather than build anything for this machine.
"$python" -m pip install --quiet --no-compile --target "$stage/layer/python" \
    --platform "manylinux2014_$arch" --implementation cp --python-version "$python_version" \
    --only-binary=:all: "$stage"/wheel/*.whl
rm -rf "$stage/layer/python/bin"  # console scripts, with a shebang for this machine
# Lambda's /opt is read-only: without .pyc files in the layer, every cold start would compile every module of ours
# and of our dependencies again, in both processes. Bytecode is specific to a Python version, so only a python of
# the target version can write it; unchecked-hash: the layer never changes, so no source is looked at.
if "$python" -c "import sys; sys.exit(f'{sys.version_info[0]}.{sys.version_info[1]}' != '$python_version')"; then
    "$python" -m compileall -q -j 0 --invalidation-mode unchecked-hash "$stage/layer/python" >/dev/null
else
    echo "build.sh: $python is not Python $python_version: no .pyc in the layer, so each cold start compiles" \
         "every module (set PYTHON to a python$python_version)" >&2
fi
cp "$here/lambda-supervisor" "$stage/layer/lambda-supervisor"
chmod 0755 "$stage/layer/lambda-supervisor"

rm -f "$out"
(cd "$stage/layer" && "$python" -m zipfile -c "$out" python lambda-supervisor)
echo "$out"
