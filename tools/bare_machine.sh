#!/usr/bin/env bash
# Run the test suite as on a fresh Debian machine that has only build-essential, python3-dev and
# python3-venv, on a machine that has every optional package installed (issue 16).
#
#   sudo tools/bare_machine.sh                 # as root: copy the tree, `make test` in the copy
#   sudo tools/bare_machine.sh --user 65534    # the same as an unprivileged user (nobody)
#   sudo tools/bare_machine.sh --with iproute2 # hide every optional package but these
#   sudo tools/bare_machine.sh -- make test PYTEST_ARGS="-rs -k cli"     # any command
#
# How: in a private mount namespace (unshare -m, so nothing leaks to the host) every file that
# `dpkg -L` lists for the optional packages below is covered by an empty, non-executable bind mount,
# and the dynamic linker's cache is rebuilt without them. Programs are then "not found"
# (shutil.which skips a non-executable file) and libraries neither appear in ldconfig's cache nor
# load (dlopen of an empty file fails like a missing one). The working tree (tracked and untracked
# files, not ignored ones) is copied to a fresh folder owned by the user, and the command runs there
# with Debian's /usr/bin/python3 and a minimal environment, so `make test` also builds a new .venv
# from PyPI like a new user's first run. The summary line and the skip reasons are printed at the
# end; the full log is kept (its path is printed).
#
# Needs root (mount namespace), util-linux (unshare, setpriv) and dpkg. Exit status: the command's.
set -euo pipefail

# What .ci/run installs beyond build-essential python3-dev python3-venv, plus the packages that
# carry their real files (gcc-m68k-linux-gnu and clang are mostly symlinks; udhcpc is busybox).
OPTIONAL_PACKAGES="
    libpcap0.8 libpcap0.8-dev tshark
    gcc-m68k-linux-gnu gcc-12-m68k-linux-gnu cpp-m68k-linux-gnu cpp-12-m68k-linux-gnu binutils-m68k-linux-gnu
    clang clang-14 libclang-rt-14-dev
    iproute2 ethtool
    passt libslirp0 vde2 vde-switch vdeplug vde-wirefilter libvdeplug2 libvde0 udhcpc busybox
    linux-source-6.1
"

RUN_UID=0
KEEP=0
WITH=""
usage() { sed -n '2,10p' "$0" | sed 's/^# \{0,1\}//'; exit 2; }
while [ $# -gt 0 ]; do
    case "$1" in
        --user) RUN_UID="$2"; shift 2 ;;
        --keep) KEEP=1; shift ;;       # keep the copied tree (and its .venv) for a look afterwards
        --with) WITH="$WITH $2"; shift 2 ;;
        -h|--help) usage ;;
        --) shift; break ;;
        *) echo "bare_machine: unknown option $1" >&2; usage ;;
    esac
done
[ $# -gt 0 ] || set -- make test PYTEST_ARGS="-rs"

if [ "$(id -u)" != 0 ]; then
    echo "bare_machine: needs root (a private mount namespace and bind mounts); run it with sudo" >&2
    exit 2
fi
SRC=$(cd "$(dirname "$0")/.." && pwd)

if [ -z "${A2065_BARE_WORK:-}" ]; then
    WORK=$(mktemp -d /tmp/a2065-bare.XXXXXX)
    chmod 0755 "$WORK"
    set +e
    unshare --mount --propagation private env A2065_BARE_WORK="$WORK" A2065_BARE_WITH="$WITH" \
        "$0" --user "$RUN_UID" -- "$@"
    rc=$?
    set -e
    # the bind mounts ended with the namespace, so the folder can go now
    if [ "$KEEP" = 1 ]; then echo "bare_machine: kept $WORK" >&2; else rm -rf "$WORK"; fi
    exit $rc
fi

# ---- inside the private mount namespace --------------------------------------------------------
WORK="$A2065_BARE_WORK"
WITH="${A2065_BARE_WITH:-}"

EMPTY="$WORK/empty"
: > "$EMPTY"
chmod 0644 "$EMPTY"
hidden=0
for pkg in $OPTIONAL_PACKAGES; do
    case " $WITH " in *" $pkg "*) continue ;; esac
    dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "ok installed" || continue
    while IFS= read -r f; do
        t=$(readlink -f -- "$f" 2>/dev/null) || continue     # a bind mount follows symlinks
        [ -f "$t" ] || continue
        mount --bind "$EMPTY" "$t"
        hidden=$((hidden + 1))
    done < <(dpkg -L "$pkg")
done
ldconfig -C "$WORK/ld.so.cache" 2>/dev/null
mount --bind "$WORK/ld.so.cache" /etc/ld.so.cache
echo "bare_machine: hid $hidden files of: $(echo $OPTIONAL_PACKAGES)${WITH:+ except$WITH}" >&2

# The tree as a user would have it: tracked and untracked files (symlinks kept), no build products.
TREE="$WORK/a2065"
mkdir "$TREE"
(cd "$SRC" && git ls-files -z -co --exclude-standard --deduplicate) \
    | (cd "$SRC" && while IFS= read -r -d '' f; do [ -e "$f" ] || [ -L "$f" ] && printf '%s\0' "$f"; done) \
    | (cd "$SRC" && tar --null -T - -cf -) | tar -xf - -C "$TREE"
mkdir -p "$WORK/home"
chown -R "$RUN_UID:$RUN_UID" "$TREE" "$WORK/home"

LOG="/tmp/a2065-bare-uid$RUN_UID-$(date +%Y%m%d-%H%M%S).log"
echo "bare_machine: running '$*' as uid $RUN_UID in $TREE; log $LOG" >&2
set +e
setpriv --reuid="$RUN_UID" --regid="$RUN_UID" --clear-groups \
    env -i HOME="$WORK/home" USER="bare$RUN_UID" LANG=C.UTF-8 TERM=dumb \
        PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin \
        PYTHON=/usr/bin/python3 \
    bash -c 'cd "$1" && shift && "$@"' bash "$TREE" "$@" > "$LOG" 2>&1
rc=$?
set -e
grep -E "^SKIPPED|^FAILED|^ERROR" "$LOG" | sed 's/^/  /' | sort | uniq -c | sort -rn | head -60 >&2 || true
tail -1 "$LOG" >&2
echo "bare_machine: exit status $rc (uid $RUN_UID); log $LOG" >&2
exit $rc
