#!/usr/bin/env bash
# Start, reload or stop the app under gunicorn: app.sh start|stop|status.
# A second start reloads the workers (new code, same pid) instead of failing.
set -euo pipefail
. "$(dirname "$0")/lib/common.sh"
load_config
pidfile=$WARREN_DATA_DIR/gunicorn.pid
running() { [ -s "$pidfile" ] && kill -0 "$(cat "$pidfile")" 2>/dev/null; }
url=http://$WARREN_LISTEN_HOST:$WARREN_LISTEN_PORT/login

wait_ready() {
    for _ in $(seq 1 100); do
        curl -fsS -o /dev/null "$url" 2>/dev/null && return 0
        sleep 0.2
    done
    die "the app does not answer on $url; see $WARREN_LOG_DIR/app.log"
}

case "${1:-}" in
    start)
        if running; then
            say "reloading the app (pid $(cat "$pidfile"))"
            kill -HUP "$(cat "$pidfile")"
        else
            say "starting the app on $WARREN_LISTEN_HOST:$WARREN_LISTEN_PORT"
            (cd "$REPO" && "$VENV/bin/gunicorn" --daemon --pid "$pidfile" \
                --bind "$WARREN_LISTEN_HOST:$WARREN_LISTEN_PORT" --workers "$WARREN_WORKERS" \
                --error-logfile "$WARREN_LOG_DIR/app.log" --access-logfile "$WARREN_LOG_DIR/access.log" \
                --capture-output 'app:create_app()')
        fi
        wait_ready
        ;;
    stop)
        if running; then
            say "stopping the app"
            kill -TERM "$(cat "$pidfile")"
            for _ in $(seq 1 50); do running || break; sleep 0.2; done
        fi
        ;;
    status)
        running && echo "running (pid $(cat "$pidfile"))" || { echo "stopped"; exit 3; }
        ;;
    *) die "usage: app.sh start|stop|status" ;;
esac
