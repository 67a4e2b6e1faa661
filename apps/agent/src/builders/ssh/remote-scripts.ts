/**
 * The fixed shell scripts the SSH builder runs on a builder host (POSIX sh, Linux /proc).
 * They take every variable part as a positional argument ("$1", ...), quoted by shellCommand:
 * no job or configuration value is ever part of the script text.
 *
 * Process groups: OpenSSH (like Dropbear) starts each session's command in a session of its
 * own, and commands are sent as `exec sh -c SCRIPT ...`, so the script's `$$` is the leader of
 * a process group that every process of the command (buildah, its RUN steps) stays in.
 * `kill -9 -PGID` therefore ends the whole tree; PROBE checks this at connect time.
 */

/**
 * `kill_job DIR`: marks the job dir canceled (commands not yet started see it and exit) and
 * SIGKILLs the process group of every command that wrote a pidfile there. A group is only
 * killed while its leader still works in DIR, so a stale pidfile cannot hit a reused PID.
 */
const KILL_JOB = `kill_job() {
  [ -d "$1" ] || return 0
  : > "$1/canceled"
  for f in "$1"/*.pid; do
    [ -f "$f" ] || continue
    g=$(cat "$f" 2>/dev/null)
    case $g in ''|*[!0-9]*) continue ;; esac
    if [ -e "/proc/$g" ]; then
      case $(readlink "/proc/$g/cwd" 2>/dev/null) in "$1"|"$1"/*) ;; *) continue ;; esac
    fi
    kill -9 "-$g" 2>/dev/null
  done
  return 0
}`;

/** Kills the processes of the job dir `$1`. */
export const CANCEL_JOB = `${KILL_JOB}\nkill_job "$1"`;

/** Kills the processes of the job dir `$1`, then removes it. */
export const REMOVE_JOB = `${KILL_JOB}\nkill_job "$1"\nrm -rf -- "$1"`;

/**
 * Receives the job's source: kills and removes what an earlier attempt left in the job dir `$1`,
 * creates it with `src/` and `tmp/`, records its process group in the pidfile `$2` and unpacks
 * the tar archive on stdin into `src/`.
 */
export const RECEIVE_SOURCE = `${KILL_JOB}
kill_job "$1"
rm -rf -- "$1" && mkdir -p -- "$1/src" "$1/tmp" && cd -- "$1" && echo $$ > "$2" || exit 125
exec tar -xf - -C "$1/src"`;

/**
 * Writes stdin, a build secret, to the file `$2` of the dir `$1` (created 0700, the file 0600),
 * for buildah's `--secret`; the value never appears in a command line.
 */
export const RECEIVE_SECRET = `umask 077 && mkdir -p -- "$1" && cat > "$1/$2"`;

/**
 * Runs the build command of the job dir `$1` in its own process group. Arguments: the job dir,
 * the working dir (inside it), the pidfile, the registries.conf content and its path, the path
 * for stdin (the registry credentials, written 0600; empty: none), then the command's argv.
 * The pidfile is written after the `cd`, so KILL_JOB's cwd check holds; a cancel that came
 * before it is seen through the canceled flag (KILL_JOB creates it before reading pidfiles).
 */
export const BUILD = `cd -- "$2" && echo $$ > "$3" || exit 125
[ -e "$1/canceled" ] && exit 130
printf '%s\\n' "$4" > "$5" || exit 125
if [ -n "$6" ]; then (umask 077 && cat > "$6") || exit 125; fi
shift 6
exec "$@"`;

/**
 * Lists an OCI layout (`$1`) in one round trip: for `index.json` and every blob, a line
 * `file PATH SIZE` followed by its SIZE bytes when it is at most `$2` bytes (manifests, configs,
 * small layers), else `large PATH SIZE`, to be fetched only if the registry lacks it.
 */
export const LIST_LAYOUT = `cd -- "$1" || exit 1
for f in index.json blobs/*/*; do
  [ -f "$f" ] || continue
  size=$(wc -c < "$f") || exit 1
  size=$((size + 0))
  if [ "$size" -le "$2" ]; then echo "file $f $size"; cat -- "$f" || exit 1; else echo "large $f $size"; fi
done`;

/**
 * Everything a connection needs to know, in one round trip. Argument: the agent's dir.
 * Prints `root=` (the dir, created, symlinks resolved: KILL_JOB compares real paths),
 * `machine=` (uname -m), `missing=` per missing tool, and `group=PID PGID`.
 */
export const PROBE = `set -f
mkdir -p -- "$1/work" && echo "root=$(cd -- "$1" && pwd -P)"
echo "machine=$(uname -m)"
for tool in buildah tar; do command -v "$tool" >/dev/null 2>&1 || echo "missing=$tool"; done
read -r stat < /proc/$$/stat && set -- $stat && echo "group=$1 $5"`;

/**
 * What a previous connection of this agent left behind: kills and removes every job dir under
 * `$1/work`, printing `removed=DIR` for each, then removes leftover buildah containers (a killed
 * build leaves its working container mounted) with `buildah "$@" rm --all`, and the names of jobs'
 * images (`localhost/farm-job/...`, registry cache) whose removal was cut off; layers stay as cache.
 */
export const CLEAN_AGENT = `${KILL_JOB}
root=$1
shift
for d in "$root"/work/*; do
  [ -d "$d" ] || continue
  kill_job "$d"
  rm -rf -- "$d" && echo "removed=$d"
done
buildah "$@" rm --all >/dev/null || exit
buildah "$@" images --noheading --format '{{.Name}}:{{.Tag}}' | while read -r image; do
  case $image in localhost/farm-job/*) buildah "$@" rmi "$image" >/dev/null ;; esac
done`;

/** Runs the probe program read from stdin from the agent's dir `$1` (not /tmp: it may be noexec). */
export const RUN_PROBE_PROGRAM =
  'f="$1/probe-$$"; umask 077; cat > "$f" && chmod 700 "$f" && "$f"; rc=$?; rm -f -- "$f"; exit $rc';
