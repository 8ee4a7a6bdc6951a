#!/usr/bin/env bash
# start-libvirtd.sh - idempotently make sure virtlogd + libvirtd are running and that
# `virsh -c qemu:///system list` answers. Exit 0 when libvirt is usable, non-zero otherwise.
#
# Works on a fresh Debian 12 host (packages libvirt-daemon-system, libvirt-daemon-driver-qemu,
# qemu-system-x86) with or without systemd as PID 1:
#   * with systemd: `systemctl start virtlogd libvirtd`;
#   * without systemd (containers, microVMs): starts `virtlogd -d` and `libvirtd -d`
#     directly (pid files /run/virtlogd.pid, /run/libvirtd.pid; logs (warnings and
#     errors) go to /var/log/libvirt/{virtlogd,libvirtd}.log).
# Must run as root.
#
# qemu.conf policy (why we change /etc/libvirt/qemu.conf)
# ---------------------------------------------------------
# Debian's libvirt runs QEMU as user/group libvirt-qemu/kvm and, with dynamic_ownership=1,
# chown()s disks/kernels/initrds/serial-log files to that user while a domain runs (and
# tries to remember the original owner in trusted.* xattrs). Nephele keeps guest kernels,
# initrds, disk images and serial logs in the repository / in temp dirs that are often not
# traversable by libvirt-qemu (e.g. a repo below /root, 0700 tmp dirs), and the chown dance
# fails on some filesystems. For a dev/test cloud host the robust choice is to run QEMU as
# root and let libvirt leave file ownership alone, so this script maintains the block
#
#     # BEGIN nephele ... # END nephele
#     user = "root"
#     group = "root"
#     dynamic_ownership = 0
#     remember_owner = 0
#
# at the end of /etc/libvirt/qemu.conf (conflicting active `user`/`group`/
# `dynamic_ownership`/`remember_owner` lines elsewhere are commented out with `#nephele# `).
# If the file changes while libvirtd is running, libvirtd is restarted (running domains
# survive a libvirtd restart). Set NEPHELE_LIBVIRT_QEMU_AS_ROOT=0 to leave qemu.conf
# untouched; then every file handed to a domain must be readable (and the serial log's
# directory writable) by libvirt-qemu.
#
# Security drivers: AppArmor (if enabled in the host kernel) is left as configured; libvirt's
# virt-aa-helper adds the domain's kernel/initrd/serial-log paths to the per-domain profile.
# On hosts without AppArmor/SELinux libvirt picks security driver "none" automatically.
set -euo pipefail

die() { echo "start-libvirtd: ERROR: $*" >&2; exit 1; }
log() { echo "start-libvirtd: $*" >&2; }

URI="qemu:///system"
WAIT_SECS="${NEPHELE_LIBVIRT_WAIT:-30}"
QEMU_CONF="${NEPHELE_QEMU_CONF:-/etc/libvirt/qemu.conf}"

[[ $EUID -eq 0 ]] || die "must be run as root"
for tool in virsh libvirtd virtlogd; do
    command -v "$tool" >/dev/null 2>&1 \
        || [[ -x "/usr/sbin/$tool" ]] \
        || die "'$tool' not found; apt-get install libvirt-daemon-system libvirt-daemon-driver-qemu qemu-system-x86"
done
export PATH="$PATH:/usr/sbin:/sbin"

libvirt_answers() {
    timeout 10 virsh -q -c "$URI" list --all >/dev/null 2>&1
}

have_systemd() {
    [[ -d /run/systemd/system ]] && command -v systemctl >/dev/null 2>&1
}

# pid from a pid file if that process is alive and has the expected name
pid_alive() {  # $1 = pidfile, $2 = comm
    local pid
    [[ -s "$1" ]] || return 1
    pid="$(head -n1 "$1" 2>/dev/null | tr -dc 0-9)"
    [[ -n "$pid" ]] && kill -0 "$pid" 2>/dev/null \
        && [[ "$(cat "/proc/$pid/comm" 2>/dev/null)" == "$2" ]] && echo "$pid"
}

daemon_running() {  # $1 = name
    pid_alive "/run/$1.pid" "$1" >/dev/null || pidof "$1" >/dev/null 2>&1
}

# ---------------------------------------------------------------- qemu.conf
CONF_CHANGED=0
ensure_qemu_conf() {
    [[ "${NEPHELE_LIBVIRT_QEMU_AS_ROOT:-1}" == 1 ]] || { log "leaving $QEMU_CONF untouched"; return 0; }
    [[ -f "$QEMU_CONF" ]] || die "$QEMU_CONF missing (is libvirt-daemon-driver-qemu installed?)"
    local tmp
    tmp="$(mktemp)"
    # drop our old block, comment out conflicting active settings, append our block
    awk '
        /^# BEGIN nephele/ {skip=1; next}
        /^# END nephele/   {skip=0; next}
        skip {next}
        /^[[:space:]]*(user|group|dynamic_ownership|remember_owner)[[:space:]]*=/ {print "#nephele# " $0; next}
        {print}
    ' "$QEMU_CONF" >"$tmp"
    cat >>"$tmp" <<'EOF'
# BEGIN nephele (managed by scripts/start-libvirtd.sh; run QEMU as root, no chown of guest files)
user = "root"
group = "root"
dynamic_ownership = 0
remember_owner = 0
# END nephele
EOF
    if cmp -s "$tmp" "$QEMU_CONF"; then
        rm -f "$tmp"
    else
        cat "$tmp" >"$QEMU_CONF"   # keep owner/mode (0600 root) of the original file
        rm -f "$tmp"
        CONF_CHANGED=1
        log "updated $QEMU_CONF (QEMU runs as root, dynamic_ownership=0)"
    fi
}

# ---------------------------------------------------------------- start / restart
start_without_systemd() {
    mkdir -p /var/log/libvirt /run/libvirt
    if ! daemon_running virtlogd; then
        log "starting virtlogd"
        LIBVIRT_LOG_OUTPUTS="3:file:/var/log/libvirt/virtlogd.log" virtlogd -d \
            || die "virtlogd -d failed (see /var/log/libvirt/virtlogd.log)"
    fi
    local pid
    if [[ $CONF_CHANGED == 1 ]] && pid="$(pid_alive /run/libvirtd.pid libvirtd)"; then
        log "restarting libvirtd (pid $pid) to apply $QEMU_CONF"
        kill -TERM "$pid"
        for _ in $(seq 1 100); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
        kill -0 "$pid" 2>/dev/null && die "libvirtd (pid $pid) did not exit"
    elif [[ $CONF_CHANGED == 1 ]] && daemon_running libvirtd; then
        log "WARNING: libvirtd runs without /run/libvirtd.pid; restart it yourself to apply $QEMU_CONF"
    fi
    if ! daemon_running libvirtd; then
        log "starting libvirtd"
        LIBVIRT_LOG_OUTPUTS="3:file:/var/log/libvirt/libvirtd.log" libvirtd -d \
            || die "libvirtd -d failed (see /var/log/libvirt/libvirtd.log)"
    fi
}

start_with_systemd() {
    systemctl start virtlogd.socket virtlogd.service >/dev/null 2>&1 || systemctl start virtlogd \
        || die "systemctl start virtlogd failed"
    if [[ $CONF_CHANGED == 1 ]] && systemctl is-active --quiet libvirtd; then
        log "restarting libvirtd to apply $QEMU_CONF"
        systemctl restart libvirtd || die "systemctl restart libvirtd failed"
    else
        systemctl start libvirtd || die "systemctl start libvirtd failed (journalctl -u libvirtd)"
    fi
}

ensure_qemu_conf

if [[ $CONF_CHANGED == 0 ]] && daemon_running virtlogd && libvirt_answers; then
    log "libvirtd already running and answering on $URI"
    exit 0
fi

if have_systemd; then
    start_with_systemd
else
    start_without_systemd
fi

deadline=$(( $(date +%s) + WAIT_SECS ))
until libvirt_answers; do
    if (( $(date +%s) >= deadline )); then
        log "last virsh error:"
        timeout 10 virsh -c "$URI" list --all >&2 || true
        [[ -f /var/log/libvirt/libvirtd.log ]] && tail -n 20 /var/log/libvirt/libvirtd.log >&2
        die "libvirtd did not answer on $URI within ${WAIT_SECS}s"
    fi
    sleep 0.5
done
log "libvirtd is up ($URI answers)"
