#!/usr/bin/env bash
# Install the test tools (Debian chromium for the browser tests, the wallpaper photographs of the data manifest, the package with its [test] extra)
# and run every test. This is the README's second command; .ci/run runs exactly this.
set -euo pipefail
cd "$(dirname "$0")/.."

# chromium for the browser tests; plasma-workspace-wallpapers for the photographs the data manifest lists (v2 mix,
# held-out photo set: vaelab/train/manifest.py)
if [ ! -x /usr/bin/chromium ] || [ ! -d /usr/share/wallpapers/Path ]; then
  SUDO=""; [ "$(id -u)" = 0 ] || SUDO="sudo"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq chromium plasma-workspace-wallpapers >/dev/null
fi
python3 -m pip install -q -e ".[test]"

export GRADIO_ANALYTICS_ENABLED=False HF_HUB_OFFLINE=1 VAELAB_REQUIRE_BROWSER=1
python3 -m ruff check .  # style ([tool.ruff] in pyproject.toml)
exec python3 -m pytest -q "$@"
