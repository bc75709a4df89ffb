# Sourced by the other scripts: makes sure uv is there and the locked environment is installed.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
if ! command -v uv >/dev/null 2>&1; then
  echo "installing uv (the project's package manager) from PyPI ..." >&2
  python3 -m pip install --quiet --disable-pip-version-check uv==0.13.8
fi
# Bytecode compiled once here: where PYTHONDONTWRITEBYTECODE is set (as on many CI machines and
# containers) every `outbound` process would otherwise compile its imports again, 2-3 s each.
uv sync --frozen --quiet --compile-bytecode
uv run --frozen python -m compileall -q -j 0 schemas domain db providers handlers workflows activities workers \
  starter runtime examples >/dev/null
