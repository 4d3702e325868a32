#!/usr/bin/env bash
# Run Warren's SSH jump server: sshd.sh start|stop|status.
# start creates the jump account (no shell, no home) and the host key on
# first run, writes the key lookup command sshd runs at every connection,
# renders sshd_config from ssh/sshd_config.in, checks it, then starts sshd
# unless it runs (a running one is told to re-read its config).
set -euo pipefail
. "$(dirname "$0")/../bin/lib/common.sh"
load_config
dir=$WARREN_SSH_DIR
conf=$dir/sshd_config
pidfile=$dir/sshd.pid

running() { [ -s "$pidfile" ] && kill -0 "$(cat "$pidfile")" 2>/dev/null; }

prepare() {
    id -u "$WARREN_SSH_USER" >/dev/null 2>&1 || useradd --system --no-create-home \
        --home-dir /nonexistent --shell /usr/sbin/nologin "$WARREN_SSH_USER"
    # No password at all, yet not "locked" (sshd refuses locked accounts even for keys).
    [ "$(getent shadow "$WARREN_SSH_USER" | cut -d: -f2)" = "*" ] || usermod -p '*' "$WARREN_SSH_USER"
    # sshd runs the lookup command only if it and every folder above it are
    # root's and writable by nobody else.
    install -d -m 0755 -o root -g root "$dir" /run/sshd
    [ -s "$dir/ssh_host_ed25519_key" ] || ssh-keygen -q -t ed25519 -N '' -C "warren jump" \
        -f "$dir/ssh_host_ed25519_key"
    cat > "$dir/authorized-keys.tmp" <<SCRIPT
#!/bin/sh
# Written by ssh/sshd.sh: which keys the jump server accepts, from Warren's database.
cd '$REPO' && exec env -i WARREN_DATABASE='$WARREN_DATABASE' '$VENV/bin/python' -m app.sshjump "\$1"
SCRIPT
    chmod 0755 "$dir/authorized-keys.tmp" && mv "$dir/authorized-keys.tmp" "$dir/authorized-keys"
    sed -e "s|@ADDRESS@|$WARREN_SSH_ADDRESS|g" -e "s|@PORT@|$WARREN_SSH_PORT|g" \
        -e "s|@DIR@|$dir|g" -e "s|@USER@|$WARREN_SSH_USER|g" "$REPO/ssh/sshd_config.in" > "$conf.tmp"
    mv "$conf.tmp" "$conf"
    /usr/sbin/sshd -t -f "$conf" || die "$conf does not check; see above"
}

case "${1:-}" in
    start)
        prepare
        if running; then
            kill -HUP "$(cat "$pidfile")"
        else
            say "starting the SSH jump server on $WARREN_SSH_ADDRESS:$WARREN_SSH_PORT"
            /usr/sbin/sshd -f "$conf" -E "$WARREN_LOG_DIR/sshd.log" || die "sshd did not start; see $WARREN_LOG_DIR/sshd.log"
            for _ in $(seq 1 50); do running && exit 0; sleep 0.1; done
            die "sshd did not start; see $WARREN_LOG_DIR/sshd.log"
        fi
        ;;
    stop)
        if running; then
            say "stopping the SSH jump server"
            kill -TERM "$(cat "$pidfile")"
            for _ in $(seq 1 50); do running || break; sleep 0.1; done
        fi
        ;;
    status) running && echo "running (pid $(cat "$pidfile"))" || { echo "stopped"; exit 3; } ;;
    *) die "usage: sshd.sh start|stop|status" ;;
esac
