# Sourced by scripts/test: under CI=true the Web UI test needs headless Chromium and its
# driver (Debian packages `chromium`, `chromium-driver`). A fresh CI machine does not have
# them, so install them there when we may (root with apt-get); locally the test skips.
case "${CI:-}" in
  1|true|TRUE|True|yes)
    if { [ ! -x /usr/bin/chromium ] || [ ! -x /usr/bin/chromedriver ]; } \
        && [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
      echo "installing headless Chromium for the Web UI test (Debian chromium, chromium-driver) ..." >&2
      apt-get update -qq >/dev/null
      DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium chromium-driver >/dev/null
    fi
    ;;
esac
