# Shared by scripts/test and scripts/serve: install what is missing, configure, build.
# Sourced, not run.

# Debian 12 packages lancer needs to build and test. Later layers add theirs here.
LANCER_PACKAGES=(meson ninja-build g++ pkg-config cmake libboost1.81-dev libfmt-dev doctest-dev
                 libboost-json1.81-dev     # Boost.JSON is compiled: http/json.hpp links it
                 libtomlplusplus-dev       # lancer-serve's configuration file (TOML)
                 clang libclang-rt-14-dev  # clang and its runtime: the libFuzzer target
                 python3 curl              # real clients for the lancer-serve tests
                 python3-websockets)       # test/ws: Python's WebSocket client

as_root() {
  if [ "$(id -u)" -eq 0 ]; then "$@"; else sudo "$@"; fi
}

# Installs the packages in LANCER_PACKAGES that are not installed yet (apt, non-interactive).
install_missing() {
  local missing=()
  for p in "${LANCER_PACKAGES[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
  done
  if [ "${#missing[@]}" -eq 0 ]; then return 0; fi
  echo "lancer: installing ${missing[*]}"
  as_root env DEBIAN_FRONTEND=noninteractive apt-get update -qq
  as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
    "${missing[@]}" >/dev/null
}

# configure DIR [meson options...]: sets up DIR once; later calls keep it and its options.
configure() {
  local dir=$1
  shift
  if [ -f "$dir/build.ninja" ]; then return 0; fi
  meson setup "$dir" --wrap-mode=nodownload "$@"
}
