#!/usr/bin/env bash
# Debian chroots for `make test-matrix`: QGIS 3.40 (trixie) and 3.44 (sid).
#
#   tools/chroot.sh build NAME            debootstrap NAME (trixie|sid) once, cached in $CHROOT_DIR/NAME
#   tools/chroot.sh run NAME CMD [ARG..]  run CMD as root inside NAME, in this repository
#
# The cache lives outside the repository (CHROOT_DIR, default /var/cache/geochem-fusion/chroots)
# and is built only when missing: a build goes to NAME.partial and is renamed when complete,
# so an interrupted build never passes for a finished one.  The repository and ../shared are
# bind-mounted at the same absolute paths as on the host (the .pkg links are absolute), with
# the chroot's own .pkg (profile, links) mounted over the repository's; every mount is undone
# on exit (trap), whatever the command's result.  Needs root and debootstrap.
set -euo pipefail

CHROOT_DIR=${CHROOT_DIR:-/var/cache/geochem-fusion/chroots}
MIRROR=${DEBIAN_MIRROR:-http://deb.debian.org/debian}
REPO=$(cd "$(dirname "$0")/.." && pwd -P)
SHARED=$(cd "$REPO/.." && pwd -P)/shared

die() { echo "chroot.sh: $*" >&2; exit 2; }

suite_of() {
    case "$1" in
        trixie) echo trixie ;;
        sid) echo sid ;;
        *) die "unknown chroot '$1' (trixie or sid)" ;;
    esac
}

[ "$(id -u)" = 0 ] || die "needs root (debootstrap, chroot and mount): run it with sudo"

MOUNTS=()
cleanup() {
    local i
    for ((i = ${#MOUNTS[@]} - 1; i >= 0; i--)); do
        umount -l "${MOUNTS[i]}" 2>/dev/null || true
    done
    MOUNTS=()
}
trap cleanup EXIT INT TERM

bind() {  # bind SRC DEST [ro]
    mkdir -p "$2"
    mount --bind "$1" "$2"
    MOUNTS+=("$2")
    if [ "${3:-}" = ro ]; then
        mount -o remount,bind,ro "$2"
    fi
}

mount_system() {  # /proc and /dev, needed by apt, python and QGIS
    local root=$1
    mkdir -p "$root/proc" "$root/dev"
    mount -t proc proc "$root/proc"
    MOUNTS+=("$root/proc")
    bind /dev "$root/dev"
    if [ -d /dev/pts ]; then
        bind /dev/pts "$root/dev/pts"
    fi
}

build() {
    local name=$1 suite root partial
    suite=$(suite_of "$name")
    root=$CHROOT_DIR/$name
    if [ -x "$root/usr/bin/make" ] && [ -f "$root/.geochem-chroot-ready" ]; then
        return 0
    fi
    command -v debootstrap >/dev/null || {
        echo "Installing debootstrap"
        apt-get update && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends debootstrap
    }
    partial=$root.partial
    rm -rf "$partial"
    mkdir -p "$CHROOT_DIR"
    echo "Building the $name chroot in $root (once; it is cached)"
    debootstrap --variant=minbase --include=ca-certificates,make "$suite" "$partial" "$MIRROR"
    # the host's CA certificates (registries may be reached through a proxy with its own CA)
    mkdir -p "$partial/usr/local/share/ca-certificates"
    if compgen -G "/usr/local/share/ca-certificates/*.crt" >/dev/null; then
        cp /usr/local/share/ca-certificates/*.crt "$partial/usr/local/share/ca-certificates/"
    fi
    cp /etc/ssl/certs/ca-certificates.crt "$partial/etc/ssl/certs/ca-certificates.crt"
    # sid's Release file may be past its Valid-Until on a mirror snapshot
    printf 'Acquire::Check-Valid-Until "false";\n' > "$partial/etc/apt/apt.conf.d/99geochem-valid-until"
    printf 'APT::Install-Recommends "false";\n' > "$partial/etc/apt/apt.conf.d/99geochem-no-recommends"
    echo "deb $MIRROR $suite main" > "$partial/etc/apt/sources.list"
    cp /etc/resolv.conf "$partial/etc/resolv.conf" 2>/dev/null || true
    (
        MOUNTS=()
        trap cleanup EXIT
        mount_system "$partial"
        chroot "$partial" /usr/sbin/update-ca-certificates --fresh >/dev/null
        # the host's bundle again: update-ca-certificates rebuilt it from the chroot's own list
        cp /etc/ssl/certs/ca-certificates.crt "$partial/etc/ssl/certs/ca-certificates.crt"
        chroot "$partial" /usr/bin/env DEBIAN_FRONTEND=noninteractive apt-get update
    )
    touch "$partial/.geochem-chroot-ready"
    rm -rf "$root"
    mv "$partial" "$root"
}

run() {
    local name=$1 root
    shift
    # in a mount namespace of its own: parallel runs do not see each other's mounts, and
    # the kernel drops them all when the command ends, even on a kill (the trap unmounts too)
    if [ -z "${GEOCHEM_CHROOT_NS:-}" ] && unshare --mount --propagation private true 2>/dev/null; then
        GEOCHEM_CHROOT_NS=1 exec unshare --mount --propagation private "$0" run "$name" "$@"
    fi
    suite_of "$name" >/dev/null
    root=$CHROOT_DIR/$name
    [ -f "$root/.geochem-chroot-ready" ] || die "no $name chroot in $root: run 'tools/chroot.sh build $name'"
    cp /etc/resolv.conf "$root/etc/resolv.conf" 2>/dev/null || true
    mount_system "$root"
    bind "$REPO" "$root$REPO"
    if [ -d "$SHARED" ]; then
        bind "$SHARED" "$root$SHARED" ro
    fi
    # a git worktree's .git is a file pointing into the main checkout: make that readable too
    if [ -f "$REPO/.git" ] && command -v git >/dev/null; then
        local common
        common=$(git -C "$REPO" rev-parse --path-format=absolute --git-common-dir 2>/dev/null || true)
        if [ -n "$common" ] && [ -d "$common" ] && [ "${common#"$REPO"/}" = "$common" ]; then
            bind "$common" "$root$common" ro
        fi
    fi
    # the chroot's own .pkg (links, QGIS profile, test data) over the repository's
    mkdir -p "$REPO/.pkg" "$root/var/lib/geochem-fusion/pkg"
    bind "$root/var/lib/geochem-fusion/pkg" "$root$REPO/.pkg"
    local status=0
    chroot "$root" /usr/bin/env -u PIP_FIND_LINKS -u GEOCHEM_CHROOT_NS HOME=/root \
        PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin \
        DEBIAN_FRONTEND=noninteractive \
        /bin/bash -c 'cd "$0" && exec "$@"' "$REPO" "$@" || status=$?
    cleanup
    return $status
}

case "${1:-}" in
    build) [ $# = 2 ] || die "usage: $0 build NAME"; build "$2" ;;
    run) [ $# -ge 3 ] || die "usage: $0 run NAME CMD [ARG...]"; name=$2; shift 2; run "$name" "$@" ;;
    *) die "usage: $0 build NAME | run NAME CMD [ARG...]" ;;
esac
