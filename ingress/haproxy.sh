#!/usr/bin/env bash
# Run Warren's ingress proxy (HAProxy) on the public address, ports 80 and
# 443: haproxy.sh start|stop|status|reload.
# start renders haproxy.cfg from ingress/haproxy.cfg.in, makes the files it
# reads (empty route maps and crt-list, a self-signed default certificate)
# when they are missing, checks the config, then starts HAProxy in
# master-worker mode unless it runs (a running one reloads seamlessly: the
# new process takes over the listening sockets, open connections finish on
# the old one). While the public address is a loopback one the proxy is off.
set -euo pipefail
. "$(dirname "$0")/../bin/lib/common.sh"
load_config
dir=$WARREN_INGRESS_DIR
certs=$dir/certs
conf=$dir/haproxy.cfg
pidfile=$dir/haproxy.pid
log=$WARREN_LOG_DIR/haproxy.log
# As app/ingress.py's public_address(): the ingress address, else the forward address, else the SSH one.
address=${WARREN_INGRESS_ADDRESS:-${WARREN_FORWARD_ADDRESS:-$WARREN_SSH_ADDRESS}}

running() { [ -s "$pidfile" ] && kill -0 "$(cat "$pidfile")" 2>/dev/null; }
answers() { [ -S "$dir/haproxy.sock" ] && "$VENV/bin/python" -c '
import socket, sys
s = socket.socket(socket.AF_UNIX); s.settimeout(2); s.connect(sys.argv[1])
s.sendall(b"show info\n"); sys.exit(0 if b"Pid:" in s.recv(4096) else 1)' "$dir/haproxy.sock" 2>/dev/null; }

prepare() {
    install -d -m 0700 "$dir" "$certs"
    for map in sites passthrough challenges; do
        [ -e "$dir/$map.map" ] || install -m 0600 /dev/null "$dir/$map.map"
    done
    [ -e "$certs/sites.crt-list" ] || install -m 0600 /dev/null "$certs/sites.crt-list"
    if [ ! -s "$certs/default.pem" ]; then
        # Served for names no site owns: a browser warns, the 404 page says why.
        (umask 077; openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 3650 \
            -subj "/CN=no site here" -keyout "$certs/default.key" -out "$certs/default.crt" 2>/dev/null
         cat "$certs/default.crt" "$certs/default.key" > "$certs/default.pem"
         rm -f "$certs/default.crt" "$certs/default.key")
    fi
    # The TLS frontend's abstract socket is per host: named after this directory.
    local abns
    abns=warren-tls-$(printf '%s' "$dir" | sha256sum | cut -c1-12)
    sed -e "s|@ADDRESS@|$address|g" -e "s|@HTTP_PORT@|$WARREN_INGRESS_HTTP_PORT|g" \
        -e "s|@HTTPS_PORT@|$WARREN_INGRESS_HTTPS_PORT|g" -e "s|@DIR@|$dir|g" -e "s|@CERTS@|$certs|g" \
        -e "s|@PAGES@|$REPO/ingress|g" -e "s|@ABNS@|$abns|g" "$REPO/ingress/haproxy.cfg.in" > "$conf.tmp"
    mv "$conf.tmp" "$conf"
    haproxy -c -q -f "$conf" || die "$conf does not check; see above"
}

stop() {
    if running; then
        say "stopping the ingress proxy"
        kill -TERM "$(cat "$pidfile")"
        for _ in $(seq 1 50); do running || break; sleep 0.1; done
    fi
    rm -f "$pidfile"
}

case "${1:-}" in
    start|reload)
        if [[ $address == 127.* ]]; then
            say "the ingress proxy is off: the public address is $address (set WARREN_INGRESS_ADDRESS)"
            stop
            exit 0
        fi
        prepare
        if running; then
            say "reloading the ingress proxy"
            kill -USR2 "$(cat "$pidfile")"
        else
            say "starting the ingress proxy on $address:$WARREN_INGRESS_HTTP_PORT and :$WARREN_INGRESS_HTTPS_PORT (log: $log)"
            rm -f "$dir/haproxy.sock"
            (nohup haproxy -W -db -f "$conf" -p "$pidfile" </dev/null >>"$log" 2>&1 &)
        fi
        for _ in $(seq 1 50); do running && answers && exit 0; sleep 0.1; done
        die "the ingress proxy did not start; see $log"
        ;;
    stop) stop ;;
    status) running && echo "running (pid $(cat "$pidfile"))" || { echo "stopped"; exit 3; } ;;
    *) die "usage: haproxy.sh start|stop|status|reload" ;;
esac
