#!/usr/bin/env bash
# Run Warren's authoritative named: named.sh start|stop|status|reload.
# start renders the config from dns/*.in, creates the zone file and the TSIG
# and rndc keys on first run only (later runs keep the zone's records and
# keys), checks everything, then starts named unless it is running.
set -euo pipefail
. "$(dirname "$0")/../bin/lib/common.sh"
load_config
here=$REPO/dns
dir=$WARREN_DNS_DIR
conf=$dir/named.conf
zonefile=$dir/db.$WARREN_DNS_ZONE
pidfile=$dir/named.pid
logfile=$WARREN_LOG_DIR/named.log

running() { [ -s "$pidfile" ] && kill -0 "$(cat "$pidfile")" 2>/dev/null; }

transfer_key=$dir/transfer.key
public_listen="" transfer_include="" notify="    notify no;
    allow-transfer { key $WARREN_DNS_KEY_NAME; };"
if [ -n "$WARREN_DNS_PUBLIC_ADDRESS" ]; then
    public_listen="    listen-on port 53 { $WARREN_DNS_PUBLIC_ADDRESS; };"
fi
if [ -n "$WARREN_DNS_SECONDARIES" ]; then
    # Secondaries get NOTIFY and may transfer the zone with their own key.
    transfer_include="include \"$transfer_key\";"
    targets=""
    for endpoint in $WARREN_DNS_SECONDARIES; do
        targets="$targets ${endpoint%:*} port ${endpoint##*:} key warren-transfer;"
    done
    notify="    notify explicit;
    also-notify {$targets };
    allow-transfer { key $WARREN_DNS_KEY_NAME; key warren-transfer; };"
fi

render() {  # render TEMPLATE > OUTPUT
    sed -e "s|@DNS_DIR@|$dir|g" -e "s|@DNS_PORT@|$WARREN_DNS_PORT|g" \
        -e "s|@DNS_SERVER@|$WARREN_DNS_SERVER|g" -e "s|@DNS_CONTROL_PORT@|$WARREN_DNS_CONTROL_PORT|g" \
        -e "s|@DNS_KEY_FILE@|$WARREN_DNS_KEY_FILE|g" -e "s|@KEY_NAME@|$WARREN_DNS_KEY_NAME|g" \
        -e "s|@ZONE@|$WARREN_DNS_ZONE|g" -e "s|@TTL@|$WARREN_DNS_TTL|g" -e "s|@LOG_FILE@|$logfile|g" \
        -e "s|@PUBLIC_LISTEN@|$public_listen|" -e "s|@TRANSFER_KEY@|$transfer_include|" "$1" \
        | awk -v notify="$notify" '{ if ($0 == "@NOTIFY@") print notify; else print }'
}

prepare() {
    mkdir -p "$dir"
    if [ ! -s "$WARREN_DNS_KEY_FILE" ]; then
        say "generating the TSIG key $WARREN_DNS_KEY_NAME"
        tsig-keygen -a hmac-sha256 "$WARREN_DNS_KEY_NAME" > "$WARREN_DNS_KEY_FILE.tmp"
        mv "$WARREN_DNS_KEY_FILE.tmp" "$WARREN_DNS_KEY_FILE"
    fi
    [ -s "$dir/rndc.key" ] || rndc-confgen -a -A hmac-sha256 -k rndc-key -c "$dir/rndc.key" 2>/dev/null
    if [ -n "$WARREN_DNS_SECONDARIES" ] && [ ! -s "$transfer_key" ]; then
        say "generating the zone transfer key for the secondaries ($transfer_key)"
        tsig-keygen -a hmac-sha256 warren-transfer > "$transfer_key.tmp"
        mv "$transfer_key.tmp" "$transfer_key"
    fi
    # DNSSEC keys (named makes them on first start): owner-only.
    mkdir -p "$dir/keys"
    # The members' keys and the update-policy, from Warren's key fragments.
    (cd "$REPO" && "$VENV/bin/python" -m app.dns.keys) || die "cannot write the DNS key files"
    render "$here/named.conf.in" > "$conf.tmp" && mv "$conf.tmp" "$conf"
    if [ ! -s "$zonefile" ]; then
        say "creating zone $WARREN_DNS_ZONE"
        render "$here/zone.in" > "$zonefile"
    fi
    touch "$logfile"
    # named drops to the bind user: it needs to write the zone, journal and log.
    chown -R bind:bind "$dir" "$logfile"
    chmod 750 "$dir"; chmod 700 "$dir/keys"
    chmod 640 "$WARREN_DNS_KEY_FILE" "$dir/rndc.key" "$dir/member-keys.conf" "$dir/update-policy.conf"
    if [ -d "$dir/keys.d" ]; then  # key fragments hold secrets: Warren's (root's) alone
        chown -R root:root "$dir/keys.d"; chmod 700 "$dir/keys.d"
    fi
    if [ -s "$transfer_key" ]; then chmod 640 "$transfer_key"; fi
    named-checkconf "$conf" || die "named.conf does not check; see above"
    named-checkzone -i local -q "$WARREN_DNS_ZONE" "$zonefile" \
        || die "zone file $zonefile does not check (named-checkzone -i local)"
}

rndc_cmd() { rndc -k "$dir/rndc.key" -s 127.0.0.1 -p "$WARREN_DNS_CONTROL_PORT" "$@"; }

case "${1:-}" in
    start)
        prepare
        if running; then
            rndc_cmd reconfig >/dev/null
        else
            say "starting named for $WARREN_DNS_ZONE on $WARREN_DNS_SERVER:$WARREN_DNS_PORT (log: $logfile)"
            named -4 -u bind -c "$conf" || die "named did not start; see $logfile"
            for _ in $(seq 1 50); do
                dig +short +time=1 +tries=1 -p "$WARREN_DNS_PORT" @"$WARREN_DNS_SERVER" \
                    "$WARREN_DNS_ZONE" SOA | grep -q . && exit 0
                sleep 0.2
            done
            die "named does not answer for $WARREN_DNS_ZONE; see $logfile"
        fi
        ;;
    stop)
        if running; then
            say "stopping named"
            rndc_cmd stop >/dev/null 2>&1 || kill -TERM "$(cat "$pidfile")"
            for _ in $(seq 1 50); do running || break; sleep 0.2; done
        fi
        ;;
    reload) rndc_cmd reload ;;
    status) running && echo "running (pid $(cat "$pidfile"))" || { echo "stopped"; exit 3; } ;;
    *) die "usage: named.sh start|stop|status|reload" ;;
esac
