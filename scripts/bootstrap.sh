# Sourced by the other scripts: makes sure uv is there and the locked environment is installed.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
if ! command -v uv >/dev/null 2>&1; then
  echo "installing uv (the project's package manager) from PyPI ..." >&2
  python3 -m pip install --quiet --disable-pip-version-check uv==0.13.8
fi
uv sync --frozen --quiet
