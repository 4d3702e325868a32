"""How gunicorn serves Warren. bin/app.sh (production) and the tests'
LiveWarren both start gunicorn with `--config python:app.gunicorn_config`,
so they serve the same way; the command line adds the address (and the
tests their worker count).

Worker class gthread: each worker process serves WARREN_WEB_THREADS
requests at once from a pool of threads. An open console is a request that
lasts as long as its page stays open. The sync worker would give each one a
whole process, and kill it as hung after `timeout` seconds; gevent or
eventlet would monkey-patch the standard library under pylxd, requests and
sqlite3. Threads need no patching, and the worker's heartbeat runs in its
own main thread, so a console open for hours is not taken for a hung
worker. A member holds at most WARREN_MEMBER_CONSOLES threads with
consoles (app/consoles.py); everything else is short requests."""
from app.config import load_settings

_settings = load_settings()

worker_class = "gthread"
workers = _settings.workers
threads = _settings.web_threads
# A connection closes after its response, as under the sync worker: Warren
# listens on loopback behind a reverse proxy, where keep-alive gains little,
# and an idle kept-alive connection that gunicorn closes just as a client
# reuses it resets that client's request (seen with 50 concurrent POSTs).
keepalive = 0
