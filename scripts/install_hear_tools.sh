#!/usr/bin/env bash
# Install the official HEAR 2021 tools (hear-validator, heareval) beside hear-mn into the
# active Python environment (Python 3.11), without replacing the torch already installed.
#
#   scripts/install_hear_tools.sh            # uses `python` from PATH (e.g. an active venv)
#   PYTHON=/path/to/python scripts/install_hear_tools.sh
#
# Their own metadata pins packages that no longer install (numpy==1.19.2, numba==0.48,
# tensorflow, Requires-Python <3.9), so their run-time dependencies come from
# requirements-hear.txt and the two tools go in with --no-deps. Every pip call here is
# constrained to the installed torch version: a dependency asking for `torch` can neither
# upgrade it nor pull a multi-GB CUDA build.
#
# The predictions runner additionally needs TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD=1 in its
# environment (it reloads its own Lightning checkpoints with torch.load, whose default is
# weights_only=True since torch 2.6).
set -euo pipefail
cd "$(dirname "$0")/.."

PYTHON="${PYTHON:-python}"
HEAREVAL_VERSION="2021.1.3"
HEARVALIDATOR_VERSION="2021.0.6"

torch_version="$("$PYTHON" -c 'import torch; print(torch.__version__)' 2>/dev/null)" || {
    echo "install_hear_tools.sh: torch is not installed in $("$PYTHON" -c 'import sys; print(sys.prefix)');" \
        "install torch (and hear-mn) first" >&2
    exit 1
}
constraints="$(mktemp)"
trap 'rm -f "$constraints"' EXIT
echo "torch==${torch_version}" >"$constraints"
echo "install_hear_tools.sh: keeping torch==${torch_version}"

"$PYTHON" -m pip install --quiet -c "$constraints" -r requirements-hear.txt
"$PYTHON" -m pip install --quiet -c "$constraints" --no-deps "heareval==${HEAREVAL_VERSION}"
"$PYTHON" -m pip install --quiet -c "$constraints" --no-deps --ignore-requires-python \
    "hearvalidator==${HEARVALIDATOR_VERSION}"

after="$("$PYTHON" -c 'import torch; print(torch.__version__)')"
if [ "$after" != "$torch_version" ]; then
    echo "install_hear_tools.sh: torch changed from ${torch_version} to ${after}" >&2
    exit 1
fi
# Both tools import tensorflow, Lightning and their scoring libraries at start-up.
"$PYTHON" -c 'import heareval.embeddings.runner, heareval.predictions.runner, hearvalidator.validate' \
    >/dev/null 2>&1 || {
    "$PYTHON" -c 'import heareval.embeddings.runner, heareval.predictions.runner, hearvalidator.validate'
    exit 1
}
echo "install_hear_tools.sh: heareval==${HEAREVAL_VERSION} and hearvalidator==${HEARVALIDATOR_VERSION} installed"
