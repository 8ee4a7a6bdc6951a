#!/usr/bin/env bash
# build-test-guest.sh - build a tiny Nephele test guest (kernel + busybox initramfs)
#
# Usage: scripts/build-test-guest.sh [OUTDIR]        (default: <repo>/.cache/guest)
#
# Everything is built from Debian packages; no prebuilt VM images are downloaded:
#   * the kernel comes from `apt-get download linux-image-<ver>-amd64` (the version
#     the `linux-image-amd64` meta package currently depends on, or
#     $NEPHELE_GUEST_KERNEL_PKG if set), unpacked with `dpkg-deb -x`;
#   * the initramfs is busybox-static + a shell /init + a handful of kernel modules,
#     packed with cpio (newc) + gzip.
#
# Outputs in OUTDIR:
#   vmlinuz          the Debian kernel (bzImage)
#   initrd.img       gzip'ed cpio initramfs
#   kernel-version   the kernel release string (informational)
#
# Guest behaviour (see the /init heredoc below), everything on the serial console:
#   NEPHELE-GUEST-READY hostname=<hostname>
#   NEPHELE-MARKER <value>                 if `nephele.marker=<value>` is on the cmdline
#   NEPHELE-SEED dev=<dev> fs=<fs> files=<names>   a NoCloud seed was found (and mounted read-only)
#   NEPHELE-SSHKEY fingerprint=SHA256:<b64>  the seed's first SSH key, fingerprinted in the guest
#   NEPHELE-PARTITIONS <names>             /proc/partitions at boot, and again whenever it changes
#   NEPHELE-HEARTBEAT seq=<n> uptime=<s>   every $nephele.heartbeat (default 5) seconds
#   NEPHELE-GUEST-POWEROFF reason=...      on ACPI power button (busybox acpid), then poweroff
#   a root shell (busybox sh, prompt "nephele# ") on ttyS0 after READY, respawned when it
#   exits, for the interactive serial console (tests/integration/test_console_real_host.py);
#   the NEPHELE-* lines also go to the screen (tty0) of a VM with graphics
# Optional cmdline knobs: nephele.hostname=<name>, nephele.dhcp=1, nephele.heartbeat=<sec>,
# nephele.debug=1 (keep kernel console loglevel, print module loading).
# The hostname can also come from a NoCloud seed (iso9660/vfat on a cdrom or disk with a
# `meta-data` file containing `local-hostname: <name>`).
#
# Requirements (Debian 12): apt-get, dpkg-deb, busybox-static, cpio, gzip; xz-utils/zstd
# only if the kernel package ships compressed modules. Run as root (or as a user allowed
# to run `apt-get download`; apt-get update needs root).
#
# Idempotent: if vmlinuz and initrd.img exist and are newer than this script, exits 0
# immediately. Set NEPHELE_GUEST_FORCE=1 to rebuild anyway.
set -euo pipefail

die() { echo "build-test-guest: ERROR: $*" >&2; exit 1; }
log() { echo "build-test-guest: $*" >&2; }

SCRIPT_PATH="$(readlink -f "${BASH_SOURCE[0]}")"
REPO_ROOT="$(cd "$(dirname "$SCRIPT_PATH")/.." && pwd)"
OUT="${1:-$REPO_ROOT/.cache/guest}"   # default: <repo>/.cache/guest regardless of cwd

if [[ "${NEPHELE_GUEST_FORCE:-0}" != 1 && -s "$OUT/vmlinuz" && -s "$OUT/initrd.img" \
      && "$OUT/vmlinuz" -nt "$SCRIPT_PATH" && "$OUT/initrd.img" -nt "$SCRIPT_PATH" ]]; then
    log "up to date: $OUT/vmlinuz $OUT/initrd.img"
    exit 0
fi

for tool in apt-get apt-cache dpkg-deb cpio gzip find sort; do
    command -v "$tool" >/dev/null 2>&1 || die "required tool '$tool' not found"
done

# --- locate a *static* busybox (the dynamic one from package 'busybox' would need libc) ---
is_static() {  # best effort: `file`, else `ldd` (fails on static binaries), else assume yes
    if command -v file >/dev/null 2>&1; then
        ! LC_ALL=C file -L "$1" | grep -q 'dynamically linked'
    elif command -v ldd >/dev/null 2>&1; then
        ! ldd "$1" >/dev/null 2>&1
    else
        return 0
    fi
}
BUSYBOX=""
for cand in /bin/busybox /usr/bin/busybox; do
    if [[ -x "$cand" ]] && is_static "$cand"; then BUSYBOX="$cand"; break; fi
done
[[ -n "$BUSYBOX" ]] || die "static busybox not found; install it: apt-get install busybox-static"
"$BUSYBOX" --list | grep -qx insmod || die "$BUSYBOX lacks insmod applet"

mkdir -p "$OUT"
OUT="$(readlink -f "$OUT")"
WORK="$(mktemp -d "${TMPDIR:-/tmp}/nephele-guest-build.XXXXXX")"
trap 'rm -rf "$WORK"' EXIT
chmod 0755 "$WORK"   # so apt's _apt sandbox user can write the .deb (avoids a warning)

# --- pick the kernel package ---
resolve_kernel_pkg() {
    apt-cache depends linux-image-amd64 2>/dev/null \
        | awk '/Depends: linux-image-[0-9].*-amd64$/ {print $2; exit}'
}
KPKG="${NEPHELE_GUEST_KERNEL_PKG:-}"
if [[ -z "$KPKG" ]]; then
    KPKG="$(resolve_kernel_pkg || true)"
    if [[ -z "$KPKG" ]]; then
        log "linux-image-amd64 unknown to apt-cache; running apt-get update"
        apt-get update -qq || die "apt-get update failed (need root and network access to Debian mirrors)"
        KPKG="$(resolve_kernel_pkg || true)"
    fi
    [[ -n "$KPKG" ]] || die "cannot resolve kernel package from linux-image-amd64 (set NEPHELE_GUEST_KERNEL_PKG=linux-image-<ver>-amd64)"
fi
log "kernel package: $KPKG"

# --- download + unpack ---
(
    cd "$WORK"
    if ! apt-get download "$KPKG" >"$WORK/apt.log" 2>&1; then
        log "apt-get download failed, trying apt-get update first"
        apt-get update -qq >>"$WORK/apt.log" 2>&1 || true
        apt-get download "$KPKG" >>"$WORK/apt.log" 2>&1 \
            || { cat "$WORK/apt.log" >&2; die "apt-get download $KPKG failed"; }
    fi
)
DEB="$(ls "$WORK"/*.deb 2>/dev/null | head -n1)"
[[ -n "$DEB" ]] || die "no .deb downloaded for $KPKG"
dpkg-deb -x "$DEB" "$WORK/pkg" || die "dpkg-deb -x $DEB failed"
rm -f "$DEB"

VMLINUZ="$(ls "$WORK"/pkg/boot/vmlinuz-* 2>/dev/null | head -n1)"
[[ -n "$VMLINUZ" ]] || die "no /boot/vmlinuz-* in $KPKG"
KVER="${VMLINUZ##*/vmlinuz-}"
KMODS="$WORK/pkg/lib/modules/$KVER"
[[ -d "$KMODS" ]] || die "no /lib/modules/$KVER in $KPKG"
log "kernel release: $KVER"

# --- initramfs tree ---
R="$WORK/root"
mkdir -p "$R"/{bin,sbin,usr/bin,usr/sbin,proc,sys,dev,run,tmp,mnt/seed,root,etc/acpi/PWRF,usr/share/udhcpc,lib/modules/"$KVER"}
chmod 1777 "$R/tmp"
cp "$BUSYBOX" "$R/bin/busybox"
chmod 0755 "$R/bin/busybox"
# applet symlinks (busybox --list-full prints e.g. "sbin/insmod")
while read -r applet; do
    [[ -z "$applet" || "$applet" == bin/busybox ]] && continue
    mkdir -p "$R/$(dirname "$applet")"
    ln -sf /bin/busybox "$R/$applet"
done < <("$BUSYBOX" --list-full)
[[ -e "$R/bin/sh" ]] || ln -sf /bin/busybox "$R/bin/sh"
# a console node so the kernel can open stdio for /init even before devtmpfs is mounted
if [[ $EUID -eq 0 ]]; then
    mknod -m 600 "$R/dev/console" c 5 1
    mknod -m 666 "$R/dev/null" c 1 3
fi

# --- kernel modules: resolve dependencies from each module's modinfo 'depends=' ---
# Wanted (order matters: it is the load order, dependencies are inserted before users).
WANTED_MODULES=(
    virtio_pci virtio_blk virtio_net virtio_scsi virtio_console virtio_rng
    ata_piix ahci sd_mod sr_mod cdrom isofs
    crc32c_generic ext4 vfat nls_cp437 nls_ascii nls_iso8859-1
    button evdev
)
declare -A MOD_PATH=()    # modname (with _) -> path relative to $KMODS (as shipped)
while IFS= read -r -d '' f; do
    rel="${f#"$KMODS"/}"
    base="${rel##*/}"; base="${base%%.ko*}"; base="${base//-/_}"
    MOD_PATH[$base]="$rel"
done < <(find "$KMODS" -name '*.ko' -print0 -o -name '*.ko.xz' -print0 -o -name '*.ko.zst' -print0 -o -name '*.ko.gz' -print0)
[[ ${#MOD_PATH[@]} -gt 0 ]] || die "no kernel modules found in $KPKG"

declare -A MOD_DONE=()
LOAD_ORDER=()
decompress_module() {  # $1 = src (shipped), $2 = dst (.ko)
    case "$1" in
        *.ko)     cp "$1" "$2" ;;
        *.ko.xz)  command -v xz >/dev/null || die "xz needed to decompress $1 (apt-get install xz-utils)"
                  xz -dc "$1" >"$2" ;;
        *.ko.zst) command -v zstd >/dev/null || die "zstd needed to decompress $1 (apt-get install zstd)"
                  zstd -qdc "$1" >"$2" ;;
        *.ko.gz)  gzip -dc "$1" >"$2" ;;
        *)        die "unknown module format: $1" ;;
    esac
}
add_module() {  # $1 = module name
    local name="${1//-/_}" rel dst deps dep
    [[ -n "${MOD_DONE[$name]:-}" ]] && return 0
    MOD_DONE[$name]=1
    if [[ -z "${MOD_PATH[$name]:-}" ]]; then
        if grep -q "/${name//_/[-_]}\.ko" "$KMODS/modules.builtin" 2>/dev/null; then
            return 0  # built into the kernel
        fi
        die "module '$name' not found in $KPKG (neither loadable nor built-in)"
    fi
    rel="${MOD_PATH[$name]}"
    dst="$R/lib/modules/$KVER/${rel%%.ko*}.ko"
    mkdir -p "$(dirname "$dst")"
    decompress_module "$KMODS/$rel" "$dst"
    deps="$(tr '\0' '\n' <"$dst" | sed -n 's/^depends=//p' | head -n1)"
    for dep in ${deps//,/ }; do
        add_module "$dep"
    done
    LOAD_ORDER+=("$name")
}
for m in "${WANTED_MODULES[@]}"; do
    add_module "$m"
done
# modules.dep etc. for busybox modprobe inside the guest
"$BUSYBOX" depmod -b "$R" "$KVER" || die "busybox depmod failed"
printf '%s\n' "${LOAD_ORDER[@]}" >"$R/lib/modules/$KVER/nephele.load-order"
log "modules: ${LOAD_ORDER[*]}"

# --- /etc ---
echo nephele-guest >"$R/etc/hostname"
echo "root:x:0:0:root:/root:/bin/sh" >"$R/etc/passwd"
echo "root:x:0:" >"$R/etc/group"

# busybox acpid: power button (KEY_POWER) maps to action "PWRF/00000080", which runs
# /etc/acpi/PWRF/00000080.
cat >"$R/etc/acpi/PWRF/00000080" <<'EOF'
#!/bin/sh
# ACPI power button -> ask init (PID 1) to power off cleanly.
kill -USR2 1
EOF
chmod 0755 "$R/etc/acpi/PWRF/00000080"

cat >"$R/usr/share/udhcpc/default.script" <<'EOF'
#!/bin/sh
# minimal udhcpc hook: configure address, default route and resolv.conf
case "$1" in
    deconfig) ip -4 addr flush dev "$interface"; ip link set "$interface" up ;;
    bound|renew)
        ip -4 addr flush dev "$interface"
        ip -4 addr add "$ip/${mask:-24}" dev "$interface"
        for r in $router; do ip -4 route replace default via "$r" dev "$interface"; break; done
        : >/etc/resolv.conf
        for d in $dns; do echo "nameserver $d" >>/etc/resolv.conf; done
        echo "NEPHELE-DHCP iface=$interface ip=$ip/${mask:-24} router=${router:-none}" >/dev/console
        ;;
esac
exit 0
EOF
chmod 0755 "$R/usr/share/udhcpc/default.script"

# --- /init ---
cat >"$R/init" <<'EOF'
#!/bin/sh
# Nephele test guest init (busybox ash, PID 1). Built by scripts/build-test-guest.sh.
export PATH=/sbin:/bin:/usr/sbin:/usr/bin
umask 022

mount -t devtmpfs devtmpfs /dev 2>/dev/null
exec </dev/console >/dev/console 2>&1
mount -t proc proc /proc
mount -t sysfs sysfs /sys
mkdir -p /dev/pts /dev/shm
mount -t devpts devpts /dev/pts 2>/dev/null
mount -t tmpfs tmpfs /run
mount -t tmpfs tmpfs /tmp

# If the kernel console is not ttyS0, mirror our marker lines to ttyS0 as well.
SERIAL_MIRROR=""
if [ -c /dev/ttyS0 ] && ! grep -qw ttyS0 /sys/class/tty/console/active 2>/dev/null; then
    SERIAL_MIRROR=/dev/ttyS0
fi
say() {
    echo "$*"
    [ -n "$SERIAL_MIRROR" ] && echo "$*" >"$SERIAL_MIRROR" 2>/dev/null
    # and on the screen, for a VM with graphics (the graphical console shows the markers)
    [ -c /dev/tty0 ] && echo "$*" >/dev/tty0 2>/dev/null
    return 0
}

# --- kernel command line ---
MARKER=""; HOSTNAME_ARG=""; DHCP=0; HEARTBEAT=5; DEBUG=0
for arg in $(cat /proc/cmdline); do
    case "$arg" in
        nephele.marker=*)    MARKER="${arg#nephele.marker=}" ;;
        nephele.hostname=*)  HOSTNAME_ARG="${arg#nephele.hostname=}" ;;
        nephele.dhcp=1)      DHCP=1 ;;
        nephele.heartbeat=*) HEARTBEAT="${arg#nephele.heartbeat=}" ;;
        nephele.debug=1)     DEBUG=1 ;;
    esac
done

# --- power handling: busybox `poweroff`/`reboot` signal PID 1 (USR2/TERM) ---
POWERING_OFF=0
do_poweroff() {
    [ "$POWERING_OFF" = 1 ] && return
    POWERING_OFF=1
    say "NEPHELE-GUEST-POWEROFF reason=$1"
    kill $(pidof acpid udhcpc 2>/dev/null) 2>/dev/null
    sync
    umount -a -r 2>/dev/null
    poweroff -f
}
trap 'do_poweroff acpi-power-button' USR2
trap 'do_poweroff sigterm' TERM
trap 'say "NEPHELE-GUEST-REBOOT"; sync; reboot -f' INT

# --- kernel modules ---
KVER="$(uname -r)"
[ "$DEBUG" = 1 ] || dmesg -n 1   # keep kernel chatter off the serial console
if [ -f "/lib/modules/$KVER/nephele.load-order" ]; then
    while read -r m; do
        if ! modprobe "$m" 2>/dev/null; then
            f="$(find "/lib/modules/$KVER" -name "$m.ko" -o -name "$(echo "$m" | tr _ -).ko" | head -n1)"
            [ -n "$f" ] && insmod "$f" 2>/dev/null
        fi
        [ "$DEBUG" = 1 ] && echo "nephele-init: module $m: $(grep -c "^$m " /proc/modules)"
    done <"/lib/modules/$KVER/nephele.load-order"
else
    say "NEPHELE-WARN no modules for kernel $KVER"
fi
echo /sbin/modprobe >/proc/sys/kernel/modprobe 2>/dev/null

# wait (max ~3 s) until the set of block devices stops changing (async SCSI/ATA probing)
prev=""; stable=0; i=0
while [ $i -lt 15 ] && [ $stable -lt 3 ]; do
    cur="$(ls /sys/class/block 2>/dev/null | tr '\n' ' ')"
    if [ "$cur" = "$prev" ]; then stable=$((stable + 1)); else stable=0; prev="$cur"; fi
    usleep 200000; i=$((i + 1))
done

# OpenSSH's SHA256 fingerprint of a base64 key blob, computed here from the seed's key:
# sha256 of the decoded blob, hex -> bytes (printf \xHH), base64 without '=' padding
ssh_fingerprint() {
    hex="$(echo "$1" | base64 -d 2>/dev/null | sha256sum | cut -d' ' -f1)"
    echo "SHA256:$(printf "$(echo "$hex" | sed 's/../\\x&/g')" | base64 | tr -d '=\n')"
}

# the block devices and partitions the kernel knows (volumes hot-attached later show up here)
partitions() {
    awk 'NR > 2 && $4 != "" { print $4 }' /proc/partitions | tr '\n' ' ' | sed 's/ $//'
}

# --- hostname: cmdline > NoCloud seed (meta-data local-hostname) > /etc/hostname ---
SEED_HOST=""
for dev in /dev/sr[0-9]* /dev/vd[a-z] /dev/sd[a-z]; do
    [ -b "$dev" ] || continue
    for fs in iso9660 vfat; do
        if mount -t "$fs" -o ro "$dev" /mnt/seed 2>/dev/null; then
            if [ -f /mnt/seed/meta-data ]; then
                SEED_HOST="$(sed -n 's/^[[:space:]]*\(local-hostname\|hostname\):[[:space:]]*//p' /mnt/seed/meta-data | head -n1 | tr -d '"'"'"' \r')"
                say "NEPHELE-SEED dev=$dev fs=$fs files=$(ls /mnt/seed | tr '\n' ',' | sed 's/,$//')"
                # the first SSH public key of the seed (meta-data public-keys, else user-data)
                blob="$(cat /mnt/seed/meta-data /mnt/seed/user-data 2>/dev/null \
                    | grep -o -E '(ssh-(rsa|dss|ed25519)|ecdsa-sha2-nistp[0-9]+|sk-[a-z0-9@.-]+) AAAA[A-Za-z0-9+/]+=*' \
                    | head -n1 | cut -d' ' -f2)"
                [ -n "$blob" ] && say "NEPHELE-SSHKEY fingerprint=$(ssh_fingerprint "$blob")"
            fi
            umount /mnt/seed
            break
        fi
    done
    [ -n "$SEED_HOST" ] && break
done
if [ -n "$HOSTNAME_ARG" ]; then hostname "$HOSTNAME_ARG"
elif [ -n "$SEED_HOST" ]; then hostname "$SEED_HOST"
else hostname -F /etc/hostname
fi

# --- devices / network ---
for b in /sys/class/block/*; do
    [ -e "$b" ] || continue
    n="${b##*/}"
    [ -e "$b/partition" ] && continue
    case "$n" in loop*|ram*) continue ;; esac
    say "NEPHELE-BLOCK name=$n sectors=$(cat "$b/size" 2>/dev/null)"
done
ip link set lo up 2>/dev/null
for n in /sys/class/net/*; do
    n="${n##*/}"
    [ "$n" = lo ] && continue
    [ -e "/sys/class/net/$n" ] || continue
    ip link set "$n" up 2>/dev/null
    say "NEPHELE-NET name=$n mac=$(cat "/sys/class/net/$n/address" 2>/dev/null)"
    if [ "$DHCP" = 1 ]; then
        # in the background: never delay the READY marker when there is no DHCP server
        udhcpc -i "$n" -t 10 -T 2 -A 10 -S -s /usr/share/udhcpc/default.script >/dev/null 2>&1 &
    fi
done

# --- ACPI power button ---
if ls /dev/input/event* >/dev/null 2>&1; then
    acpid -c /etc/acpi -l /dev/null 2>/dev/null && ACPI=acpid || ACPI=none
else
    ACPI=none
fi

say "NEPHELE-GUEST-READY hostname=$(hostname)"
[ -n "$MARKER" ] && say "NEPHELE-MARKER $MARKER"
[ "$DEBUG" = 1 ] && say "nephele-init: kernel=$KVER acpi=$ACPI uptime=$(cut -d' ' -f1 /proc/uptime)"

PARTS="$(partitions)"
say "NEPHELE-PARTITIONS $PARTS"

# an interactive shell on the serial line (the console of the portal): getty makes ttyS0 its
# controlling terminal (line editing, echo, ^C), no login prompt; respawned when it exits
if [ -c /dev/ttyS0 ]; then
    (
        export PS1='nephele# ' HOME=/root TERM=vt100
        while [ "$POWERING_OFF" = 0 ]; do
            getty -n -i -L -l /bin/sh 0 ttyS0 vt100 </dev/null >/dev/null 2>&1
            sleep 1
        done
    ) &
fi

seq=0
while :; do
    sleep "$HEARTBEAT" &
    wait $!            # `wait` is interruptible, so traps run promptly
    seq=$((seq + 1))
    say "NEPHELE-HEARTBEAT seq=$seq uptime=$(cut -d' ' -f1 /proc/uptime)"
    now="$(partitions)"
    if [ "$now" != "$PARTS" ]; then
        PARTS="$now"
        say "NEPHELE-PARTITIONS $PARTS"
    fi
done
EOF
chmod 0755 "$R/init"

# --- pack ---
(
    cd "$R"
    find . -mindepth 1 | LC_ALL=C sort | cpio --quiet -o -H newc -R 0:0
) | gzip -9n >"$WORK/initrd.img" || die "creating initramfs failed"

install -m 0644 "$VMLINUZ" "$OUT/vmlinuz.tmp"
install -m 0644 "$WORK/initrd.img" "$OUT/initrd.img.tmp"
mv -f "$OUT/vmlinuz.tmp" "$OUT/vmlinuz"
mv -f "$OUT/initrd.img.tmp" "$OUT/initrd.img"
echo "$KVER" >"$OUT/kernel-version"
log "built $OUT/vmlinuz ($(du -h "$OUT/vmlinuz" | cut -f1)) and $OUT/initrd.img ($(du -h "$OUT/initrd.img" | cut -f1)) for $KVER"
