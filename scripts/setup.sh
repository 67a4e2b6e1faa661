#!/usr/bin/env bash
# Provisions a Debian 12 machine (as root) for the farm's local services and tests:
#   - Debian packages the farm and its tests run (buildah, registry, skopeo, git, qemu, sshd...);
#   - qemu-user through binfmt_misc, so an amd64 host runs arm64 (and armhf) binaries;
#   - static busybox binaries for amd64 and arm64 in .cache/busybox/<arch>/busybox, the raw
#     material of the test base images (nothing can be pulled from the internet);
#   - PostgreSQL and Redis, but only when nothing answers on DATABASE_URL / REDIS_URL.
# Idempotent: when everything is in place it only checks, in about a second.
set -euo pipefail

REPO_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
CACHE="$REPO_ROOT/.cache"
DATABASE_URL="${DATABASE_URL:-postgresql://postgres@127.0.0.1:5432/postgres}"
REDIS_URL="${REDIS_URL:-redis://127.0.0.1:6379}"
export DEBIAN_FRONTEND=noninteractive

log() { printf 'setup: %s\n' "$*"; }
die() {
  printf 'setup: ERROR: %s\n' "$*" >&2
  exit 1
}

[[ $EUID -eq 0 ]] || die "run me as root: I install Debian packages and configure binfmt_misc"
command -v dpkg-query >/dev/null || die "this machine has no dpkg; I only know how to provision Debian"

HOST_ARCH="$(dpkg --print-architecture)"
case "$HOST_ARCH" in
  amd64) FOREIGN_ARCH=arm64 BINFMTS=(qemu-aarch64 qemu-arm) ;;
  arm64) FOREIGN_ARCH=amd64 BINFMTS=(qemu-x86_64) ;;
  *) die "unsupported host architecture $HOST_ARCH (expected amd64 or arm64)" ;;
esac

# --- apt ---------------------------------------------------------------------------------------

APT_UPDATED=0
apt_update() {
  ((APT_UPDATED)) && return 0
  log "apt-get update"
  apt-get update -qq || die "apt-get update failed (are the Debian mirrors reachable?)"
  APT_UPDATED=1
}

# Prints the packages among "$@" that are not installed.
missing_packages() {
  local pkg
  for pkg in "$@"; do
    [[ "$(dpkg-query -W -f='${db:Status-Abbrev}' "$pkg" 2>/dev/null)" == ii* ]] || printf '%s\n' "$pkg"
  done
}

install_packages() {
  local missing
  mapfile -t missing < <(missing_packages "$@")
  ((${#missing[@]} == 0)) && return 0
  apt_update
  log "installing ${missing[*]}"
  apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null ||
    die "apt-get install ${missing[*]} failed"
}

PACKAGES=(
  buildah            # builds the images (agents, tests)
  docker-registry    # the OCI registry the tests push to
  skopeo             # inspects what the farm published
  git                # clones the exact commit
  ca-certificates    # https:// repositories and registries
  qemu-user-static   # arm64/armhf binaries on amd64 hosts, through binfmt_misc
  binfmt-support     # update-binfmts
  openssh-server     # sshd for the SSH builder backend's tests
  openssh-client     # ssh:// repositories, SSH builder backend
  apache2-utils      # htpasswd for the test registry's users
  chromium           # headless browser for the dashboard's end-to-end test (playwright-core)
  iproute2           # ip netns: the SSH tests' builder host in a network namespace of its own
  openssl            # keys and certificates of the test registry's token server
  procps             # pgrep/pkill: the SSH builder's cleanup on the builder host
  redis-server       # the fault tests' own Redis, killed and restarted (test/helpers/redis-server.ts)
)
# Clients that tell whether PostgreSQL/Redis answer; any version will do.
command -v pg_isready >/dev/null || PACKAGES+=(postgresql-client)
command -v redis-cli >/dev/null || PACKAGES+=(redis-tools)
install_packages "${PACKAGES[@]}"

# --- qemu-user through binfmt_misc ------------------------------------------------------------

BINFMT_DIR=/proc/sys/fs/binfmt_misc
# Not `mountpoint`: on some kernels the empty directory under /proc already looks like one.
if [[ ! -e $BINFMT_DIR/register ]]; then
  log "mounting binfmt_misc"
  [[ -d $BINFMT_DIR ]] || modprobe binfmt_misc 2>/dev/null || true
  mount -t binfmt_misc binfmt_misc "$BINFMT_DIR" || die "cannot mount binfmt_misc at $BINFMT_DIR"
fi

for fmt in "${BINFMTS[@]}"; do
  entry="$BINFMT_DIR/$fmt"
  # F (fix binary): the kernel opens the interpreter once, so it also works inside build chroots
  # where /usr/bin/qemu-*-static does not exist. An entry registered without it is redone.
  if [[ -e $entry ]] && ! grep -q '^flags: .*F' "$entry"; then
    log "re-registering $fmt with the F flag"
    echo -1 >"$entry"
  fi
  if [[ ! -e $entry ]] || ! grep -qx enabled "$entry"; then
    log "enabling $fmt"
    update-binfmts --enable "$fmt" || die "update-binfmts --enable $fmt failed"
  fi
  grep -qx enabled "$entry" || die "$entry is not enabled"
  grep -q '^flags: .*F' "$entry" || die "$entry lacks the F flag: $(grep '^flags' "$entry")"
done

# --- static busybox for amd64 and arm64 -------------------------------------------------------

if ! dpkg --print-foreign-architectures | grep -qx "$FOREIGN_ARCH"; then
  log "dpkg --add-architecture $FOREIGN_ARCH"
  dpkg --add-architecture "$FOREIGN_ARCH"
  APT_UPDATED=0 # the package lists of the new architecture are still missing
fi

mkdir -p "$CACHE/debs"
for arch in amd64 arm64; do
  bin="$CACHE/busybox/$arch/busybox"
  [[ -x $bin ]] && continue
  deb="$(find "$CACHE/debs" -maxdepth 1 -name "busybox-static_*_$arch.deb" | head -n 1)"
  if [[ -z $deb ]]; then
    log "downloading busybox-static:$arch"
    # As root (not _apt), which can write to the repository's cache folder.
    download=(apt-get download -qq -o APT::Sandbox::User=root "busybox-static:$arch")
    if ! (cd "$CACHE/debs" && "${download[@]}" 2>/dev/null); then
      apt_update
      (cd "$CACHE/debs" && "${download[@]}") ||
        die "apt-get download busybox-static:$arch failed"
    fi
    deb="$(find "$CACHE/debs" -maxdepth 1 -name "busybox-static_*_$arch.deb" | head -n 1)"
    [[ -n $deb ]] || die "busybox-static:$arch downloaded, but no .deb found in $CACHE/debs"
  fi
  log "extracting busybox for $arch"
  unpacked="$(mktemp -d)"
  dpkg-deb -x "$deb" "$unpacked"
  install -D -m 0755 "$unpacked/bin/busybox" "$bin"
  rm -rf "$unpacked"
done

# Proves both binaries and, for the foreign one, qemu through binfmt.
for arch in amd64 arm64; do
  expected="$([[ $arch == amd64 ]] && echo x86_64 || echo aarch64)"
  got="$("$CACHE/busybox/$arch/busybox" uname -m 2>&1)" || true
  [[ $got == "$expected" ]] ||
    die "$CACHE/busybox/$arch/busybox uname -m printed '$got', expected '$expected' (is binfmt working?)"
done

# --- PostgreSQL and Redis ---------------------------------------------------------------------

# Sets HOST and PORT from a URL like scheme://[user[:pass]@]host[:port][/path][?query].
parse_host_port() {
  local rest="${1#*://}" default_port="$2"
  rest="${rest%%[/?#]*}"
  rest="${rest##*@}"
  if [[ $rest =~ ^\[([^]]*)\](:([0-9]+))?$ || $rest =~ ^([^:]*)(:([0-9]+))?$ ]]; then
    HOST="${BASH_REMATCH[1]:-127.0.0.1}"
    PORT="${BASH_REMATCH[3]:-$default_port}"
  else
    die "cannot read host and port from '$1'"
  fi
}

is_local() { [[ $1 == 127.* || $1 == localhost || $1 == ::1 ]]; }

# pg_isready: 0 accepting, 1 rejecting (starting up) - both mean a server answers.
pg_answers() {
  local status=0
  pg_isready -q -h "$HOST" -p "$PORT" -t 3 || status=$?
  ((status <= 1))
}

wait_for() {
  local what="$1" seconds="$2"
  shift 2
  local i
  for ((i = 0; i < seconds * 4; i++)); do
    "$@" && return 0
    sleep 0.25
  done
  die "$what did not come up within ${seconds}s"
}

parse_host_port "$DATABASE_URL" 5432
if ! pg_answers; then
  is_local "$HOST" || die "no PostgreSQL answers at $HOST:$PORT (DATABASE_URL); I only start local ones"
  fresh_install=0
  if [[ -n "$(missing_packages postgresql)" ]]; then
    install_packages postgresql
    fresh_install=1
  fi
  cluster="$(pg_lsclusters --no-header | awk -v port="$PORT" '$3 == port { print $1 " " $2; exit }')"
  [[ -n $cluster ]] || die "no PostgreSQL cluster is configured for port $PORT (see pg_lsclusters, pg_createcluster)"
  read -r pg_version pg_name <<<"$cluster"
  if ((fresh_install)); then
    # The same access as on the dev/CI machines: trust over loopback, for user postgres.
    hba="/etc/postgresql/$pg_version/$pg_name/pg_hba.conf"
    log "trusting loopback connections in $hba"
    {
      printf '%s\n' '# scripts/setup.sh: trust loopback connections (dev/test machine)' \
        'local all all trust' 'host all all 127.0.0.1/32 trust' 'host all all ::1/128 trust'
      cat "$hba"
    } >"$hba.setup" && mv "$hba.setup" "$hba"
    chown postgres:postgres "$hba"
    pg_ctlcluster "$pg_version" "$pg_name" reload 2>/dev/null || true
  fi
  log "starting PostgreSQL $pg_version/$pg_name"
  pg_ctlcluster "$pg_version" "$pg_name" start 2>/dev/null || pg_answers ||
    die "pg_ctlcluster $pg_version $pg_name start failed"
  wait_for "PostgreSQL at $HOST:$PORT" 30 pg_answers
fi
log "PostgreSQL answers at $HOST:$PORT"

# Any reply (PONG, or NOAUTH from a password-protected server) means a Redis answers.
redis_answers() {
  local reply
  reply="$(redis-cli -u "$REDIS_URL" ping 2>/dev/null)" && [[ -n $reply ]]
}

parse_host_port "$REDIS_URL" 6379
if ! redis_answers; then
  is_local "$HOST" || die "no Redis answers at $HOST:$PORT (REDIS_URL); I only start local ones"
  install_packages redis-server
  if ! redis_answers; then
    log "starting Redis on port $PORT"
    # A directory of its own: the packaged instance's dump.rdb and AOF stay untouched.
    redis_dir="/var/lib/redis/farm-$PORT"
    redis_log="/var/log/redis/farm-$PORT.log"
    mkdir -p "$redis_dir" /var/log/redis
    chown redis:redis "$redis_dir" /var/log/redis
    # noeviction: BullMQ must never lose a job key to memory pressure.
    runuser -u redis -- redis-server --daemonize yes --bind 127.0.0.1 -::1 --port "$PORT" \
      --dir "$redis_dir" --logfile "$redis_log" --maxmemory-policy noeviction --appendonly yes ||
      die "redis-server did not start (see $redis_log)"
    wait_for "Redis at $HOST:$PORT" 15 redis_answers
  fi
fi
log "Redis answers at $HOST:$PORT"
log "ready"
