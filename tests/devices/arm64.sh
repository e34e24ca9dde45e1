#!/usr/bin/env bash
# An emulated aarch64 bedside device for tests: a Debian arm64 root filesystem run through
# qemu-user-static (binfmt_misc), with an sshd inside listening on 127.0.0.1 only.
#
#   tests/devices/arm64.sh up STATE_DIR     build (or reuse) the root filesystem, start sshd,
#                                           write STATE_DIR/devices.toml and STATE_DIR/ssh_config
#   tests/devices/arm64.sh down STATE_DIR   stop sshd by its PID and unmount what up mounted
#
# Needs root, qemu-user-static, mmdebstrap, arch-test, openssh-client and python3 (with
# venv) on the host.
# The root filesystem holds python3, openssh-server, numpy and the aarch64 ai-edge-litert
# wheel only; it is cached as a tarball under ${XDG_CACHE_HOME:-~/.cache}/bedside-lite/
# arm64-rootfs keyed by its recipe, so a second `up` takes seconds. It is built from the
# apt sources this machine is configured with (never a hard-coded mirror).
#
# Exit status: 0 done, 2 failed, 3 this machine cannot run the device (not root, no qemu,
# binfmt_misc or mmdebstrap): tests skip on 3.
#
# Settings (environment): BEDSIDE_ARM64_SUITE (default: the host's Debian suite),
# BEDSIDE_ARM64_WHEELS (pip requirements installed on the device), BEDSIDE_ARM64_PORT
# (default: a free port).
set -euo pipefail

RECIPE_VERSION=1
PACKAGES="python3,openssh-server"
WHEELS="${BEDSIDE_ARM64_WHEELS:-ai-edge-litert==2.3.0 numpy==2.4.6}"
CACHE_DIR="${XDG_CACHE_HOME:-$HOME/.cache}/bedside-lite/arm64-rootfs"
SSHD_CONFIG=/etc/ssh/bedside_sshd_config
SSHD_PID=/run/bedside_sshd.pid
HOST_KEY=/etc/ssh/bedside_host_ed25519_key

die() {
    echo "arm64.sh: error: $*" >&2
    exit 2
}

# A facility this machine lacks (root, qemu, binfmt_misc, mmdebstrap): exit 3, so tests skip.
unavailable() {
    echo "arm64.sh: unavailable: $*" >&2
    exit 3
}

log() {
    echo "arm64.sh: $*" >&2
}

usage() {
    echo "usage: $0 up|down STATE_DIR" >&2
    exit 2
}

# The host's apt sources as one-line "deb URI SUITE COMPONENTS" entries (deb822 and one-line
# formats), binary entries only; the device's packages come from the same mirror.
host_apt_sources() {
    python3 - <<'EOF'
import glob, re

lines = []
for path in sorted(glob.glob("/etc/apt/sources.list.d/*.sources")):
    for stanza in re.split(r"\n\s*\n", open(path).read()):
        fields, key = {}, None
        for line in stanza.splitlines():
            if not line.strip() or line.lstrip().startswith("#"):
                continue
            if line[0] in " \t" and key:
                fields[key] += " " + line.strip()
                continue
            key, _, value = line.partition(":")
            key = key.strip().lower()
            fields[key] = value.strip()
        if "deb" not in fields.get("types", "").split():
            continue
        if fields.get("enabled", "yes").lower() == "no":
            continue
        for uri in fields.get("uris", "").split():
            for suite in fields.get("suites", "").split():
                lines.append(f"deb {uri} {suite} {fields.get('components', 'main')}")
for path in ["/etc/apt/sources.list"] + sorted(glob.glob("/etc/apt/sources.list.d/*.list")):
    try:
        text = open(path).read()
    except OSError:
        continue
    for line in text.splitlines():
        line = re.sub(r"\[[^]]*\]", "", line.split("#", 1)[0]).split()
        if len(line) >= 3 and line[0] == "deb":
            lines.append(" ".join(line))
print("\n".join(lines))
EOF
}

# The Debian suite the host's apt follows (its first plain suite, e.g. bookworm).
host_suite() {
    awk '{print $3}' <<<"$1" | grep -v -E -- '-(updates|security|backports)' | head -n 1
}

# Registers qemu-aarch64 with binfmt_misc (F flag: the interpreter is opened at registration,
# so it runs inside a chroot that does not contain it).
ensure_binfmt() {
    local qemu
    qemu="$(command -v qemu-aarch64-static || true)"
    [ -n "$qemu" ] || unavailable "qemu-aarch64-static not found; install it: apt-get install qemu-user-static"
    if [ ! -e /proc/sys/fs/binfmt_misc/register ]; then
        mount -t binfmt_misc binfmt_misc /proc/sys/fs/binfmt_misc ||
            unavailable "cannot mount binfmt_misc on /proc/sys/fs/binfmt_misc (needs root and a kernel with binfmt_misc)"
    fi
    if [ ! -e /proc/sys/fs/binfmt_misc/qemu-aarch64 ]; then
        if command -v update-binfmts >/dev/null && [ -e /usr/share/binfmts/qemu-aarch64 ]; then
            update-binfmts --enable qemu-aarch64 >/dev/null 2>&1 || true
        fi
    fi
    if [ ! -e /proc/sys/fs/binfmt_misc/qemu-aarch64 ]; then
        printf '%s' ":qemu-aarch64:M::\\x7fELF\\x02\\x01\\x01\\x00\\x00\\x00\\x00\\x00\\x00\\x00\\x00\\x00\\x02\\x00\\xb7\\x00:\\xff\\xff\\xff\\xff\\xff\\xff\\xff\\x00\\xff\\xff\\xff\\xff\\xff\\xff\\xff\\xff\\xfe\\xff\\xff\\xff:$qemu:F" \
            >/proc/sys/fs/binfmt_misc/register || unavailable "cannot register qemu-aarch64 with binfmt_misc"
    fi
    grep -q '^enabled' /proc/sys/fs/binfmt_misc/qemu-aarch64 || unavailable "binfmt_misc entry qemu-aarch64 is disabled"
    grep -q '^flags:.*F' /proc/sys/fs/binfmt_misc/qemu-aarch64 ||
        die "binfmt_misc entry qemu-aarch64 lacks the F (fix-binary) flag; re-register it with F"
}

# Builds the root filesystem tarball $1 with mmdebstrap from the host's apt sources.
build_rootfs() {
    local tarball="$1" suite="$2" sources="$3"
    command -v mmdebstrap >/dev/null || unavailable "mmdebstrap not found; install it: apt-get install mmdebstrap"
    # mmdebstrap needs arch-test to run a foreign architecture through qemu.
    command -v arch-test >/dev/null || unavailable "arch-test not found; install it: apt-get install arch-test"
    local work
    work="$(mktemp -d "$CACHE_DIR/build.XXXXXX")"
    # pip on the host fetches and unpacks the aarch64 wheels into the device's site-packages
    # (wheels are archives; nothing is compiled), so the device needs no pip.
    python3 -m venv "$work/pip-venv" || unavailable "python3 -m venv failed; install python3-venv"
    local platforms=(--platform manylinux2014_aarch64 --platform linux_aarch64)
    local minor
    for minor in 17 24 26 27 28 31 34 35 36 38 39 41; do
        platforms+=(--platform "manylinux_2_${minor}_aarch64")
    done
    local mirrors=()
    local line
    while IFS= read -r line; do
        [ -n "$line" ] && mirrors+=("$line")
    done <<<"$sources"
    log "building the arm64 $suite root filesystem (several minutes under qemu)"
    # The hook asks the device's own python3 (through qemu) for its version and site directory.
    local hook
    hook="set -e
version=\$(chroot \"\$1\" /usr/bin/python3 -c 'import sys; print(\"%d.%d\" % sys.version_info[:2])')
\"$work/pip-venv/bin/python\" -m pip download --quiet --only-binary=:all: ${platforms[*]} \
    --python-version \"\$version\" --dest \"$work/wheels\" $WHEELS
\"$work/pip-venv/bin/python\" -m pip install --quiet --no-index --find-links \"$work/wheels\" \
    --only-binary=:all: ${platforms[*]} --python-version \"\$version\" --no-compile \
    --target \"\$1/usr/local/lib/python\$version/dist-packages\" $WHEELS
rm -rf \"\$1\"/var/cache/apt/archives/*.deb \"\$1\"/var/lib/apt/lists/*"
    mmdebstrap --mode=root --arch=arm64 --variant=minbase --include="$PACKAGES" \
        --customize-hook="$hook" "$suite" "$work/rootfs.tar" "${mirrors[@]}" >&2 ||
        { rm -rf "$work"; die "mmdebstrap failed (see above)"; }
    mv "$work/rootfs.tar" "$tarball"
    rm -rf "$work"
}

mounted() {
    findmnt -rn -o TARGET | grep -qxF "$1"
}

free_port() {
    python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

up() {
    local state="$1"
    [ "$(id -u)" = 0 ] || unavailable "needs root (chroot, mounts, binfmt_misc)"
    command -v ssh-keygen >/dev/null || unavailable "ssh-keygen not found; install openssh-client"
    mkdir -p "$state" "$CACHE_DIR"
    state="$(cd "$state" && pwd)"
    local rootfs="$state/rootfs"
    if [ -s "$state/sshd.pid" ] && kill -0 "$(cat "$state/sshd.pid")" 2>/dev/null &&
        [ -s "$state/devices.toml" ]; then
        log "already up: $state/devices.toml"
        return 0
    fi
    ensure_binfmt

    if [ ! -x "$rootfs/usr/bin/python3" ]; then
        local sources suite key tarball
        sources="$(host_apt_sources)"
        [ -n "$sources" ] || die "no 'deb' entries in /etc/apt/sources.list{,.d}; configure apt first"
        suite="${BEDSIDE_ARM64_SUITE:-$(host_suite "$sources")}"
        [ -n "$suite" ] || die "cannot tell the host's Debian suite from its apt sources; set BEDSIDE_ARM64_SUITE"
        # Only the entries of the chosen suite (and its -updates/-security) go into the device.
        sources="$(awk -v s="$suite" '$3 == s || index($3, s "-") == 1' <<<"$sources")"
        key="$(printf '%s\n' "$RECIPE_VERSION" "$suite" "$PACKAGES" "$WHEELS" "$sources" |
            sha256sum | cut -c1-16)"
        tarball="$CACHE_DIR/$suite-$key.tar"
        if [ ! -s "$tarball" ]; then
            build_rootfs "$tarball" "$suite" "$sources"
        else
            log "reusing the cached root filesystem $tarball"
        fi
        rm -rf "$rootfs.partial"
        mkdir -p "$rootfs.partial"
        tar -xf "$tarball" -C "$rootfs.partial" --numeric-owner
        mv "$rootfs.partial" "$rootfs"
    fi

    # Keys: the device's host key and the client's key, made on the host (fast) per state dir.
    [ -s "$state/id_ed25519" ] || ssh-keygen -q -t ed25519 -N '' -C bedside-arm64 -f "$state/id_ed25519"
    [ -s "$state/ssh_host_ed25519_key" ] ||
        ssh-keygen -q -t ed25519 -N '' -C bedside-arm64-host -f "$state/ssh_host_ed25519_key"
    install -m 600 "$state/ssh_host_ed25519_key" "$rootfs$HOST_KEY"
    install -d -m 700 "$rootfs/root/.ssh"
    install -m 600 "$state/id_ed25519.pub" "$rootfs/root/.ssh/authorized_keys"
    mkdir -p "$rootfs/run/sshd"
    chmod 755 "$rootfs/run/sshd"

    # /proc for qemu and sshd; a private /dev (tmpfs with the few nodes needed), so nothing
    # of the host's /dev is reachable, or removable, from the device.
    mounted "$rootfs/proc" || mount -t proc proc "$rootfs/proc"
    if ! mounted "$rootfs/dev"; then
        mount -t tmpfs -o mode=755,size=1m,nosuid tmpfs "$rootfs/dev"
        mknod -m 666 "$rootfs/dev/null" c 1 3
        mknod -m 666 "$rootfs/dev/zero" c 1 5
        mknod -m 666 "$rootfs/dev/random" c 1 8
        mknod -m 666 "$rootfs/dev/urandom" c 1 9
        mknod -m 666 "$rootfs/dev/tty" c 5 0
        mkdir -p "$rootfs/dev/pts" "$rootfs/dev/shm"
        ln -s pts/ptmx "$rootfs/dev/ptmx"
        ln -s /proc/self/fd "$rootfs/dev/fd"
    fi
    mounted "$rootfs/dev/pts" || mount -t devpts -o newinstance,ptmxmode=0666,mode=620 devpts "$rootfs/dev/pts"
    mounted "$rootfs/dev/shm" || mount -t tmpfs -o mode=1777,nosuid,nodev tmpfs "$rootfs/dev/shm"

    local port="${BEDSIDE_ARM64_PORT:-$(free_port)}"
    cat >"$rootfs$SSHD_CONFIG" <<EOF
# Written by tests/devices/arm64.sh: loopback only, key authentication only.
Port $port
ListenAddress 127.0.0.1
HostKey $HOST_KEY
PidFile $SSHD_PID
PermitRootLogin prohibit-password
PasswordAuthentication no
KbdInteractiveAuthentication no
UsePAM no
PrintMotd no
Subsystem sftp internal-sftp
AcceptEnv LANG LC_*
EOF
    rm -f "$rootfs$SSHD_PID"
    chroot "$rootfs" /usr/sbin/sshd -f "$SSHD_CONFIG" -E /var/log/bedside_sshd.log ||
        die "sshd did not start; see $rootfs/var/log/bedside_sshd.log"
    local i
    for i in $(seq 1 100); do
        [ -s "$rootfs$SSHD_PID" ] && break
        sleep 0.1
    done
    [ -s "$rootfs$SSHD_PID" ] || die "sshd wrote no PID file; see $rootfs/var/log/bedside_sshd.log"
    cp "$rootfs$SSHD_PID" "$state/sshd.pid"

    echo "[127.0.0.1]:$port $(cut -d' ' -f1,2 "$state/ssh_host_ed25519_key.pub")" >"$state/known_hosts"
    cat >"$state/ssh_config" <<EOF
# Written by tests/devices/arm64.sh; use with: ssh -F $state/ssh_config arm64
Host arm64 127.0.0.1
    HostName 127.0.0.1
    Port $port
    User root
    IdentityFile $state/id_ed25519
    IdentitiesOnly yes
    UserKnownHostsFile $state/known_hosts
    StrictHostKeyChecking yes
    BatchMode yes
EOF
    cat >"$state/devices.toml" <<EOF
# Written by tests/devices/arm64.sh: an emulated aarch64 device (qemu-user); its timings
# mean nothing. Plain ssh: ssh -F $state/ssh_config arm64
[devices.arm64]
ssh = "ssh://root@127.0.0.1:$port"
identity = "$state/id_ed25519"
python = "/usr/bin/python3"
known_hosts = "$state/known_hosts"
emulated = true
EOF
    # sshd answers once its key exchange works through qemu.
    for i in $(seq 1 60); do
        if ssh -F "$state/ssh_config" -o ConnectTimeout=5 arm64 true 2>/dev/null; then
            log "up: $state/devices.toml (ssh -F $state/ssh_config arm64)"
            return 0
        fi
        sleep 0.5
    done
    die "sshd on 127.0.0.1:$port does not accept the key; see $rootfs/var/log/bedside_sshd.log"
}

down() {
    local state="$1"
    [ -d "$state" ] || return 0
    state="$(cd "$state" && pwd)"
    local rootfs="$state/rootfs"
    if [ -s "$state/sshd.pid" ]; then
        local pid
        pid="$(cat "$state/sshd.pid")"
        # Only a process running this device's sshd is stopped.
        if kill -0 "$pid" 2>/dev/null && [ "$(readlink "/proc/$pid/root")" = "$rootfs" ]; then
            kill "$pid"
            local i
            for i in $(seq 1 50); do
                kill -0 "$pid" 2>/dev/null || break
                sleep 0.1
            done
            kill -0 "$pid" 2>/dev/null && kill -9 "$pid"
        fi
        rm -f "$state/sshd.pid"
    fi
    # Sessions sshd left behind (their root is this rootfs) would keep the mounts busy.
    local proc
    for proc in /proc/[0-9]*; do
        if [ "$(readlink "$proc/root" 2>/dev/null)" = "$rootfs" ]; then
            kill -9 "${proc#/proc/}" 2>/dev/null || true
        fi
    done
    local target
    for target in "$rootfs/dev/shm" "$rootfs/dev/pts" "$rootfs/dev" "$rootfs/proc"; do
        if mounted "$target"; then
            umount "$target" || umount -l "$target"
        fi
    done
    if findmnt -rn -o TARGET | grep -qF "$rootfs/"; then
        die "something is still mounted under $rootfs"
    fi
    log "down: $state"
}

main() {
    [ $# -eq 2 ] || usage
    case "$1" in
    up) up "$2" ;;
    down) down "$2" ;;
    *) usage ;;
    esac
}

# One line, so that bash has read all of it before running: editing this file while an `up`
# runs cannot make the running copy execute what follows.
main "$@"; exit $?
