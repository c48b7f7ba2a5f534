#!/usr/bin/env bash
# Install the smartroller firmware on a Raspberry Pi Zero 2 W with Raspberry Pi OS
# (Bookworm, Lite or Desktop, 32- or 64-bit). Run from a checkout of the repository:
#
#   sudo hardware/install-pi.sh             # or: make install-pi
#   hardware/install-pi.sh --dry-run        # print every step, change nothing
#   hardware/install-pi.sh --root DIR       # write the files under DIR, print the commands
#   sudo hardware/install-pi.sh --compiled  # the firmware's per-cycle modules compiled
#                                           # with mypyc (~half its CPU; a long build)
#   sudo hardware/install-pi.sh --pure      # back to the pure-Python modules
#   (without either, a reinstall keeps the build the last one chose: /opt/smartroller/build)
#
# What it does (each step is idempotent: running it again changes nothing more):
#   1. apt packages: python3-venv, python3-dev, i2c-tools, bluez (hciconfig / btmgmt)
#   2. a system user "smartroller" in the i2c and gpio groups
#   3. a venv in /opt/smartroller/venv with this checkout installed with its [pi] extra
#      (--compiled: then built again with SMARTROLLER_COMPILE=1; gcc added in step 1;
#      the choice is kept in /opt/smartroller/build for the next run)
#   4. /etc/smartroller/roller.toml (the default profile; an existing one is kept)
#   5. I2C on at 400 kHz: dtparam=i2c_arm=on,i2c_arm_baudrate=400000 in config.txt,
#      i2c-dev loaded at boot
#   6. the Bluetooth controller handed to the firmware: bluetooth.service (bluetoothd)
#      stopped and masked; the unit brings hci0 down before each start
#   7. the systemd unit smartroller-fw.service (Type=notify, watchdog, restart), enabled
# A reboot is needed once after I2C was first enabled; the script says so.
set -euo pipefail

PREFIX=/opt/smartroller
CONF_DIR=/etc/smartroller
UNIT_NAME=smartroller-fw.service
SERVICE_USER=smartroller
I2C_LINE="dtparam=i2c_arm=on,i2c_arm_baudrate=400000"
MARK="# smartroller: I2C at 400 kHz for the MPU-6050 and the ADS1115s"

SRC="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
DRY_RUN=0
ROOT=""
COMPILED=""  # 1 compiled, 0 pure, empty: as the last install chose (pure at first)
REBOOT=0

usage() {
    sed -n '2,13p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//'
}

while [ $# -gt 0 ]; do
    case "$1" in
        --dry-run) DRY_RUN=1 ;;
        --compiled) COMPILED=1 ;;
        --pure) COMPILED=0 ;;
        --root)
            [ $# -ge 2 ] || { echo "install-pi: --root needs a directory" >&2; exit 2; }
            ROOT="$2"
            shift ;;
        --source)
            [ $# -ge 2 ] || { echo "install-pi: --source needs a directory" >&2; exit 2; }
            SRC="$2"
            shift ;;
        -h|--help) usage; exit 0 ;;
        *) echo "install-pi: unknown option: $1 (see --help)" >&2; exit 2 ;;
    esac
    shift
done

if [ -n "$ROOT" ] && [ ! -d "$ROOT" ]; then
    echo "install-pi: --root $ROOT is not a directory" >&2
    exit 2
fi
if [ ! -f "$SRC/pyproject.toml" ] || [ ! -f "$SRC/hardware/$UNIT_NAME" ]; then
    echo "install-pi: $SRC is not a smartroller checkout (no pyproject.toml)" >&2
    exit 2
fi

step() { printf '== %s\n' "$*"; }

# A command that changes the running system: printed, and run unless --dry-run/--root.
run() {
    printf '+ %s\n' "$*"
    if [ "$DRY_RUN" -eq 0 ] && [ -z "$ROOT" ]; then
        "$@"
    fi
}

# A file under the target root ($ROOT, or / for real).
target() { printf '%s%s' "$ROOT" "$1"; }

# The build the last install chose (step 3 writes it): a reinstall, for an update of the
# checkout, must not silently swap a compiled firmware for the pure one.
BUILD_FILE="$PREFIX/build"
if [ -z "$COMPILED" ]; then
    if [ "$(cat "$(target "$BUILD_FILE")" 2>/dev/null || true)" = compiled ]; then
        COMPILED=1
        echo "install-pi: keeping the compiled build (as installed; --pure to go back)"
    else
        COMPILED=0
    fi
fi

# Install file $1 as $2 (mode $3) unless identical; with $4 = keep, never overwrite.
put_file() {
    local src="$1" dest dest_path="$2" mode="$3" keep="${4:-}"
    dest="$(target "$dest_path")"
    if [ -e "$dest" ] && { [ "$keep" = keep ] || cmp -s "$src" "$dest"; }; then
        printf '  %s: up to date%s\n' "$dest_path" "$([ "$keep" = keep ] && echo ' (kept)')"
        return 1
    fi
    printf '  write %s\n' "$dest_path"
    if [ "$DRY_RUN" -eq 0 ]; then
        install -D -m "$mode" "$src" "$dest"
    fi
}

config_txt() {
    local candidate
    for candidate in /boot/firmware/config.txt /boot/config.txt; do
        if [ -f "$(target "$candidate")" ]; then
            printf '%s' "$candidate"
            return
        fi
    done
    printf '/boot/firmware/config.txt'
}

# Make config.txt hold exactly one active "dtparam=i2c_arm=..." line: ours.
enable_i2c() {
    local path file tmp
    path="$(config_txt)"
    file="$(target "$path")"
    if [ -f "$file" ] && grep -qx "$I2C_LINE" "$file" \
            && [ "$(grep -c '^[[:space:]]*dtparam=i2c_arm=' "$file")" -eq 1 ]; then
        printf '  %s: I2C already on at 400 kHz\n' "$path"
        return
    fi
    printf '  edit %s: %s\n' "$path" "$I2C_LINE"
    REBOOT=1
    if [ "$DRY_RUN" -eq 1 ]; then
        return
    fi
    mkdir -p "$(dirname "$file")"
    touch "$file"
    tmp="$(mktemp "$file.XXXXXX")"
    grep -v -e '^[[:space:]]*dtparam=i2c_arm=' -e "^$MARK\$" "$file" > "$tmp" || true
    printf '%s\n%s\n' "$MARK" "$I2C_LINE" >> "$tmp"
    chmod --reference="$file" "$tmp" 2>/dev/null || chmod 0755 "$tmp"
    mv "$tmp" "$file"
}

write_text() {  # write_text PATH TEXT: a small file, only if it differs
    local dest
    dest="$(target "$1")"
    if [ -f "$dest" ] && [ "$(cat "$dest")" = "$2" ]; then
        printf '  %s: up to date\n' "$1"
        return
    fi
    printf '  write %s\n' "$1"
    if [ "$DRY_RUN" -eq 0 ]; then
        mkdir -p "$(dirname "$dest")"
        printf '%s\n' "$2" > "$dest"
    fi
}

if [ "$DRY_RUN" -eq 0 ] && [ -z "$ROOT" ] && [ "$(id -u)" -ne 0 ]; then
    echo "install-pi: run as root (sudo $0), or use --dry-run" >&2
    exit 2
fi
if [ -z "$ROOT" ] && [ -r /etc/os-release ]; then
    # shellcheck disable=SC1091
    codename="$(. /etc/os-release && printf '%s' "${VERSION_CODENAME:-}")"
    if [ "$codename" != bookworm ]; then
        echo "install-pi: warning: written for Raspberry Pi OS Bookworm, this is" \
             "'${codename:-unknown}'" >&2
    fi
fi

step "1/7 packages"
run apt-get update
if [ "$COMPILED" -eq 1 ]; then  # (mypyc's C: a compiler and Python's headers)
    run apt-get install -y --no-install-recommends python3-venv python3-dev i2c-tools bluez gcc
else
    run apt-get install -y --no-install-recommends python3-venv python3-dev i2c-tools bluez
fi

step "2/7 system user $SERVICE_USER (groups i2c, gpio)"
if [ -z "$ROOT" ] && id "$SERVICE_USER" >/dev/null 2>&1; then
    run usermod --append --groups i2c,gpio "$SERVICE_USER"
else
    run useradd --system --home-dir /var/lib/smartroller --shell /usr/sbin/nologin \
        --groups i2c,gpio "$SERVICE_USER"
fi

step "3/7 firmware in $PREFIX/venv"
if [ -z "$ROOT" ] && [ -x "$PREFIX/venv/bin/python" ]; then
    echo "  $PREFIX/venv exists"
else
    run python3 -m venv "$PREFIX/venv"
fi
run "$PREFIX/venv/bin/python" -m pip install --upgrade --quiet pip
if [ "$COMPILED" -eq 1 ]; then
    # setup.py compiles its COMPILED modules with mypyc (hardware/BUILD.md, "Compiled")
    run "$PREFIX/venv/bin/python" -m pip install --upgrade --quiet "${SRC}[pi,compile]"
    run env SMARTROLLER_COMPILE=1 "$PREFIX/venv/bin/python" -m pip install --quiet \
        --no-build-isolation --no-deps --force-reinstall "$SRC"
else
    run "$PREFIX/venv/bin/python" -m pip install --upgrade --quiet "${SRC}[pi]"
fi
write_text "$BUILD_FILE" "$([ "$COMPILED" -eq 1 ] && echo compiled || echo pure)"

step "4/7 hardware profile $CONF_DIR/roller.toml"
put_file "$SRC/hardware/roller.toml" "$CONF_DIR/roller.toml" 0644 keep || true

step "5/7 I2C at 400 kHz"
enable_i2c
write_text /etc/modules-load.d/smartroller-i2c.conf "i2c-dev"

step "6/7 Bluetooth controller for the firmware (bluetoothd off)"
run systemctl disable --now bluetooth.service
run systemctl mask bluetooth.service
run rfkill unblock bluetooth

step "7/7 systemd unit $UNIT_NAME"
if put_file "$SRC/hardware/$UNIT_NAME" "/etc/systemd/system/$UNIT_NAME" 0644; then
    run systemctl daemon-reload
fi
run systemctl enable "$UNIT_NAME"
if [ "$REBOOT" -eq 1 ]; then
    echo "I2C settings changed: reboot (sudo reboot); the firmware starts at boot."
else
    run systemctl restart "$UNIT_NAME"
    echo "Running: systemctl status $UNIT_NAME; journalctl -u $UNIT_NAME -f"
fi
echo "Check the parts: sudo systemctl stop $UNIT_NAME &&" \
     "sudo $PREFIX/venv/bin/smartroller-fw selftest" \
     "--config $CONF_DIR/roller.toml"
