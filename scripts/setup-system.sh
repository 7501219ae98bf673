#!/usr/bin/env bash
# Install the Debian/Ubuntu packages the server and its tests use, only those missing.
# Quick when everything is there: it only asks dpkg.
set -euo pipefail

# libgl1 ... libxcb1: what the opencv-python wheel (the GUI build) loads; xvfb, xdotool and
# x11-apps (xwd): a virtual screen for the --display tests, typed into and grabbed.
# Every program the tests run, and its package (keep in step with tests/):
#   ffmpeg, ffprobe -> ffmpeg          chromium -> chromium       janus -> janus
#   nginx -> nginx-light (+ libnginx-mod-rtmp for RTMP)           openssl -> openssl
#   gpsd -> gpsd     gpsfake -> gpsd-clients                      pgrep -> procps
#   ip, tc, ss (network namespaces, shaping) -> iproute2
#   Xvfb -> xvfb     xdotool -> xdotool     xwd -> x11-apps       libX11 (ctypes) -> libx11-6
packages=(python3 python3-venv python3-pip libturbojpeg0 ffmpeg chromium gpsd gpsd-clients
          nginx-light openssl iproute2 procps janus libgl1 libglib2.0-0 libsm6 libxext6
          libxcb1 libx11-6 xvfb xdotool x11-apps libnginx-mod-rtmp)
if ! command -v dpkg >/dev/null 2>&1 || ! command -v apt-get >/dev/null 2>&1; then
  echo "setup-system: not a Debian/Ubuntu system; install by hand: ${packages[*]}" >&2
  exit 0
fi
# Ubuntu ships Chromium as a snap behind the 'chromium' deb; chromium-browser is its name there.
if ! apt-cache show chromium >/dev/null 2>&1 && apt-cache show chromium-browser >/dev/null 2>&1; then
  packages=("${packages[@]/chromium/chromium-browser}")
fi
missing=()
for pkg in "${packages[@]}"; do
  if ! dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed"; then
    missing+=("$pkg")
  fi
done
# A python3 from elsewhere (pyenv, a venv) that can already make venvs needs no python3-venv.
if python3 -m venv --help >/dev/null 2>&1 && python3 -c 'import ensurepip' 2>/dev/null; then
  missing=("${missing[@]/python3-venv}")
  missing=("${missing[@]/python3-pip}")
fi
want=()
for pkg in "${missing[@]}"; do [ -n "$pkg" ] && [ "$pkg" != python3 ] && want+=("$pkg"); done
if ! command -v python3 >/dev/null 2>&1; then want+=(python3); fi
[ ${#want[@]} -eq 0 ] && exit 0

sudo=""
if [ "$(id -u)" -ne 0 ]; then
  if command -v sudo >/dev/null 2>&1; then sudo="sudo"; else
    echo "setup-system: need root (or sudo) to install: ${want[*]}" >&2; exit 1
  fi
fi
echo "setup-system: installing ${want[*]}"
export DEBIAN_FRONTEND=noninteractive
$sudo apt-get update -qq
$sudo apt-get install -y -qq --no-install-recommends "${want[@]}" >/dev/null
# The nginx package starts a default site on port 80; the tests run their own instances.
if [[ " ${want[*]} " == *" nginx-light "* ]] && command -v systemctl >/dev/null 2>&1; then
  $sudo systemctl disable --now nginx >/dev/null 2>&1 || true
fi
