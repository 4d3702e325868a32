#!/usr/bin/env bash
# Start, reload or stop Warren's processes: app.sh start|stop|status.
# - the web app under gunicorn, threaded workers (app/gunicorn_config.py; a second start
#   reloads its workers: new code, same pid),
#   logging requests with invitation tokens redacted (app/accesslog.py);
# - the provisioning worker (`flask worker`; a second start restarts it; jobs
#   in hand finish first, and any interrupted job is picked up again).
set -euo pipefail
. "$(dirname "$0")/lib/common.sh"
load_config
app_pid=$WARREN_DATA_DIR/gunicorn.pid
worker_pid=$WARREN_DATA_DIR/worker.pid
url=http://$WARREN_LISTEN_HOST:$WARREN_LISTEN_PORT/login

running() { [ -s "$1" ] && kill -0 "$(cat "$1")" 2>/dev/null; }

stop_pid() {  # stop_pid PIDFILE NAME
    if running "$1"; then
        say "stopping the $2"
        kill -TERM "$(cat "$1")"
        for _ in $(seq 1 150); do running "$1" || break; sleep 0.2; done
    fi
    rm -f "$1"
}

start_worker() {
    stop_pid "$worker_pid" worker
    say "starting the worker (log: $WARREN_LOG_DIR/worker.log)"
    (cd "$REPO" || exit 1
     nohup "$VENV/bin/flask" --app app worker </dev/null >>"$WARREN_LOG_DIR/worker.log" 2>&1 &
     echo $! > "$worker_pid")
}

start_app() {
    if running "$app_pid"; then
        say "reloading the app (pid $(cat "$app_pid"))"
        kill -HUP "$(cat "$app_pid")"
    else
        say "starting the app on $WARREN_LISTEN_HOST:$WARREN_LISTEN_PORT"
        # app/gunicorn_config.py: the worker class (threads, for consoles) and the worker count
        (cd "$REPO" && "$VENV/bin/gunicorn" --config python:app.gunicorn_config --daemon --pid "$app_pid" \
            --bind "$WARREN_LISTEN_HOST:$WARREN_LISTEN_PORT" \
            --error-logfile "$WARREN_LOG_DIR/app.log" --access-logfile "$WARREN_LOG_DIR/access.log" \
            --logger-class app.accesslog.RedactingLogger \
            --capture-output 'app:create_app()')
    fi
    for _ in $(seq 1 100); do
        curl -fsS -o /dev/null "$url" 2>/dev/null && return 0
        sleep 0.2
    done
    die "the app does not answer on $url; see $WARREN_LOG_DIR/app.log"
}

case "${1:-}" in
    start) start_worker; start_app
           running "$worker_pid" || die "the worker exited; see $WARREN_LOG_DIR/worker.log" ;;
    stop) stop_pid "$app_pid" app; stop_pid "$worker_pid" worker ;;
    status)
        code=0
        for pair in "app:$app_pid" "worker:$worker_pid"; do
            if running "${pair#*:}"; then echo "${pair%%:*}: running (pid $(cat "${pair#*:}"))"
            else echo "${pair%%:*}: stopped"; code=3; fi
        done
        exit $code ;;
    *) die "usage: app.sh start|stop|status" ;;
esac
