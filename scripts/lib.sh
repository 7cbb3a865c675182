# Shared by scripts/run and scripts/test: install what vidaud needs on a
# fresh Debian machine and start the servers it talks to, each only when it
# is missing. Sourced, not run.

set -euo pipefail

VIDAUD_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"

log() { printf '[vidaud] %s\n' "$*" >&2; }

# port_open PORT: is something listening on 127.0.0.1:PORT?
port_open() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

# wait_port PORT WHAT [SECONDS]
wait_port() {
  local port=$1 what=$2 limit=${3:-60} i
  for ((i = 0; i < limit * 4; i++)); do
    port_open "$port" && return 0
    sleep 0.25
  done
  log "$what did not come up on 127.0.0.1:$port within ${limit}s"
  return 1
}

# The GStreamer plugins vidaud loads at run time: demuxers and decoders for
# every input (good, bad, ugly, libav), the encoders and muxers of its
# outputs (base: Opus, Ogg; good: FLAC, MP4; bad: AAC). The Debian package
# depends on exactly these besides the libraries the binary links.
GSTREAMER_PLUGIN_PACKAGES=(
  gstreamer1.0-plugins-base gstreamer1.0-plugins-good gstreamer1.0-plugins-bad
  gstreamer1.0-plugins-ugly gstreamer1.0-libav
)

# Building: libmp3lame-dev because vidaud links the system's LAME (the one
# ffmpeg uses).
DEBIAN_PACKAGES=(
  pkg-config libgstreamer1.0-dev libgstreamer-plugins-base1.0-dev libmp3lame-dev
  "${GSTREAMER_PLUGIN_PACKAGES[@]}"
)

# What scripts/package builds with: dpkg-shlibdeps, objcopy, mmdebstrap
# (and its merged-/usr hook), Python for the image's assembly.
PACKAGING_TOOLS=(dpkg-dev binutils mmdebstrap python3)

# cargo_version: the workspace's version, from Cargo.toml.
cargo_version() {
  sed -n '/^\[workspace.package\]/,/^\[/ s/^version = "\(.*\)"$/\1/p' "$VIDAUD_ROOT/Cargo.toml"
}

# ensure_debian_packages [EXTRA...]: apt-get install whatever is missing.
ensure_debian_packages() {
  local missing=() pkg
  for pkg in "${DEBIAN_PACKAGES[@]}" "$@"; do
    dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q 'install ok installed' || missing+=("$pkg")
  done
  if ((${#missing[@]})); then
    log "installing Debian packages: ${missing[*]}"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
  fi
}

# ensure_python_tools: SecantusDB (MongoDB wire protocol), aiosmtpd,
# Schemathesis (checks the running API against its OpenAPI description),
# tuspy (a tus client nobody here wrote, for the resumable-upload tests),
# standardwebhooks (verifies the webhooks' signatures in the tests) and
# kubernetes-validate (the manifests against Kubernetes' schemas; it brings
# PyYAML, which tests/packaging/kube.py reads them with) and mutagen (reads
# the chapters of our outputs in tests/chapters.rs).
ensure_python_tools() {
  # pip's console scripts (secantusd-py) land here; under pyenv they get no
  # shim until a rehash, so put the directory itself on PATH.
  PATH="$(python3 -c 'import sysconfig; print(sysconfig.get_path("scripts"))'):$PATH"
  export PATH
  if ! command -v secantusd-py >/dev/null || ! python3 -c 'import aiosmtpd' 2>/dev/null \
    || ! command -v schemathesis >/dev/null || ! python3 -c 'import tusclient' 2>/dev/null \
    || ! python3 -c 'import standardwebhooks' 2>/dev/null \
    || ! command -v kubernetes-validate >/dev/null || ! python3 -c 'import mutagen' 2>/dev/null; then
    log "installing SecantusDB, aiosmtpd, Schemathesis, tuspy, standardwebhooks, kubernetes-validate and mutagen from PyPI"
    python3 -m pip install -q SecantusDB aiosmtpd schemathesis tuspy standardwebhooks kubernetes-validate mutagen
    if command -v pyenv >/dev/null; then pyenv rehash || true; fi
    hash -r
  fi
  command -v secantusd-py >/dev/null || { log "secantusd-py not found after installing SecantusDB"; return 1; }
}

# ensure_node_packages: the npm packages the tests drive, at the versions
# each package-lock.json pins: tests/tus (tus-js-client), tests/waveform
# (waveform-data, what peaks.js reads waveforms with) and tests/web
# (playwright-core, which drives Debian's Chromium; it downloads no browser).
ensure_node_packages() {
  command -v npm >/dev/null || ensure_debian_packages nodejs npm
  local dir
  for dir in "$VIDAUD_ROOT/tests/tus" "$VIDAUD_ROOT/tests/waveform" "$VIDAUD_ROOT/tests/web"; do
    if [[ ! -d "$dir/node_modules" ]] || ! (cd "$dir" && npm ls --silent >/dev/null 2>&1); then
      log "installing the test's npm packages (${dir#"$VIDAUD_ROOT"/})"
      (cd "$dir" && npm ci --no-audit --no-fund --loglevel=error >/dev/null)
    fi
  done
}

# ensure_cargo_fuzz: cargo fuzz (from crates.io, pinned), which builds and
# runs the fuzz targets under fuzz/ with libFuzzer. On this toolchain it
# runs without a sanitizer (`-s none`): Rust's own checks (bounds,
# overflow in the debug assertions cargo fuzz turns on) are the oracle.
CARGO_FUZZ_VERSION=0.13.2
ensure_cargo_fuzz() {
  if ! cargo fuzz --version 2>/dev/null | grep -q "$CARGO_FUZZ_VERSION"; then
    log "installing cargo-fuzz $CARGO_FUZZ_VERSION"
    cargo install --quiet --locked --version "$CARGO_FUZZ_VERSION" cargo-fuzz
  fi
}

# fuzz_smoke SECONDS WORKDIR: every fuzz target for SECONDS from its seeds
# (fuzz/seeds/<the target's first word>: mp4, output), a new corpus under
# WORKDIR; a crash fails, with the input left in fuzz/artifacts/.
fuzz_smoke() {
  local seconds=$1 work=$2 target
  for target in $(cd "$VIDAUD_ROOT/fuzz" && cargo fuzz list); do
    log "fuzzing $target for ${seconds}s"
    mkdir -p "$work/corpus-$target"
    if ! (cd "$VIDAUD_ROOT" && cargo fuzz run -s none "$target" "$work/corpus-$target" \
      "fuzz/seeds/${target%%_*}" -- -max_total_time="$seconds" -rss_limit_mb=1024 \
      >"$work/fuzz-$target.log" 2>&1); then
      tail -n 60 "$work/fuzz-$target.log"
      log "fuzz target $target failed (the input is in fuzz/artifacts/$target/)"
      return 1
    fi
    tail -n 1 "$work/fuzz-$target.log"
  done
}

ensure_rabbitmq() {
  if ! port_open 5672; then
    log "starting RabbitMQ"
    rabbitmq-server -detached >/dev/null 2>&1 || true
  fi
  wait_port 5672 RabbitMQ 90
}

ensure_mariadb() {
  if ! port_open 3306; then
    log "starting MariaDB"
    start-stop-daemon --start --oknodo --background --exec /usr/sbin/mariadbd
  fi
  wait_port 3306 MariaDB 60
}

# free_port: a loopback TCP port nothing listens on right now.
free_port() {
  python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

# start_secantus PORT STORAGE LOGFILE [CACHE]: a SecantusDB with a capped
# oplog (it otherwise keeps a copy of every write in memory) and a
# WiredTiger cache of CACHE (default 1G; a file of hundreds of MB written
# at full speed needs more, or writes fail with WT_CACHE_FULL).
start_secantus() {
  local port=$1 storage=$2 logfile=$3 cache=${4:-1G}
  log "starting SecantusDB on 127.0.0.1:$port"
  nohup secantusd-py --host 127.0.0.1 --port "$port" --storage-path "$storage" \
    --cache-size "$cache" \
    --oplog-max-entries 1000 --oplog-retention-seconds 60 --log-level WARNING \
    >"$logfile" 2>&1 &
  echo $! >"$logfile.pid"
  wait_port "$port" SecantusDB 60
}

# stop_pidfiles FILE...: stop what start_* started and wait until it is gone.
stop_pidfiles() {
  local pidfile pid i
  for pidfile in "$@"; do
    [[ -s "$pidfile" ]] || continue
    pid=$(cat "$pidfile")
    kill "$pid" 2>/dev/null || continue
    for ((i = 0; i < 100; i++)); do
      kill -0 "$pid" 2>/dev/null || break
      sleep 0.1
    done
    kill -9 "$pid" 2>/dev/null || true
  done
}

# start_smtp PORT MAILDIR LOGFILE: an SMTP sink that writes each mail to a Maildir.
start_smtp() {
  local port=$1 maildir=$2 logfile=$3
  log "starting an SMTP sink on 127.0.0.1:$port (Maildir $maildir)"
  mkdir -p "$maildir"/{tmp,new,cur}
  nohup python3 -m aiosmtpd -n -l "127.0.0.1:$port" -c aiosmtpd.handlers.Mailbox "$maildir" \
    >"$logfile" 2>&1 &
  echo $! >"$logfile.pid"
  wait_port "$port" "SMTP sink" 30
}
