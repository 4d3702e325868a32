"""The ingress proxy's certificates: one per terminating route's host
name, from the ACME directory (WARREN_ACME_DIRECTORY), renewed before
expiry, retried with exponential backoff, served without a reload.

Each host name has a row in the certificates table (what the member
sees: pending, valid until, or the last error and the next attempt) and,
once issued, one owner-only file with the chain and key in the proxy's
certs directory (0700), which the proxy loads when it starts. refresh()
issues whatever is due, judged by app/clock.py so tests can move time,
and forgets the certificates no route wants any more (row and file); it
runs as part of a site's worker job (a new site gets its certificate at
once) and as a periodic pass (renewals and retries). The rows and files
make it durable: a worker that dies mid-issuance leaves the row due, and
the next pass issues it again.
"""
import logging
import threading
from datetime import timedelta
from pathlib import Path

from . import acme_client, clock, haproxy, ingress
from .errors import WarrenError
from .store import transaction

log = logging.getLogger(__name__)
RENEW_BEFORE = timedelta(days=30)
FIRST_RETRY = timedelta(minutes=1)
LONGEST_RETRY = timedelta(hours=12)
PENDING, VALID, FAILED = "pending", "valid", "failed"
_issue_lock = threading.Lock()  # one issuance at a time: a job and the pass never order twice


def enabled(settings) -> bool:
    """Certificates are issued when the proxy is on and an ACME directory is set."""
    return bool(settings.acme_directory) and ingress.public_address(settings) is not None


def backoff(attempts: int) -> timedelta:
    """How long to wait after the attempts-th failure in a row: 1 min, 2, 4, ... up to 12 h."""
    return min(FIRST_RETRY * 2 ** max(attempts - 1, 0), LONGEST_RETRY)


def of_hostname(db, hostname: str) -> dict | None:
    """A host name's certificate row, None when there is none."""
    rows = list(db["certificates"].rows_where("hostname = ?", [hostname]))
    return rows[0] if rows else None


def _due(row: dict, moment: str) -> bool:
    if row["next_attempt_at"] and row["next_attempt_at"] > moment:
        return False
    return row["state"] != VALID or (row["renew_at"] or "") <= moment


def _wanted(db, settings) -> list[str]:
    return [route.hostname for route in ingress.desired_routes(db, settings)
            if route.mode == ingress.TERMINATE]


def refresh(db, settings, only: set[str] | None = None) -> list[str]:
    """Issue or renew every certificate that is due (only those host
    names, when given), forget those no route wants, and let the proxy
    serve the result; lines saying what happened."""
    if not enabled(settings):
        return []
    with _issue_lock:
        wanted = _wanted(db, settings)
        moment = acme_client.utc(clock.now())
        with transaction(db):
            for hostname in wanted:
                db.execute("INSERT OR IGNORE INTO certificates (hostname, state, updated_at) "
                           "VALUES (?, ?, ?)", [hostname, PENDING, moment])
        done = [] if only is not None else _forget(db, settings, set(wanted))
        for hostname in wanted:
            if only is not None and hostname not in only:
                continue
            row = of_hostname(db, hostname)
            if _due(row, moment):
                done.append(_issue(db, settings, row))
    if done:
        done += ingress.sync(db, settings)
    return done


def _issue(db, settings, row: dict) -> str:
    hostname = row["hostname"]
    files = ingress.paths(settings)
    try:
        issued = acme_client.issue(
            settings.acme_directory, Path(files.account_key), settings.acme_email,
            settings.acme_ca_file, hostname,
            publish=lambda token, answer: ingress.publish_challenge(settings, token, answer),
            withdraw=lambda token: ingress.withdraw_challenge(settings, token))
    except Exception as error:  # a bug must not stop the other host names
        if not isinstance(error, WarrenError):
            log.exception("issuing a certificate for %s crashed", hostname)
            error = WarrenError(f"internal error ({type(error).__name__}); it has been logged")
        return _failed(db, row, error)
    Path(files.certs).mkdir(mode=0o700, parents=True, exist_ok=True)
    haproxy.write_file(ingress.certificate_path(settings, hostname),
                       issued.chain_pem.rstrip("\n") + "\n" + issued.key_pem)
    facts = acme_client.facts(issued.chain_pem)
    renew_at = acme_client.renewal_time(facts.not_before, facts.not_after, RENEW_BEFORE)
    with transaction(db):
        db["certificates"].update(hostname, {
            "state": VALID, "serial": facts.serial, "not_before": acme_client.utc(facts.not_before),
            "not_after": acme_client.utc(facts.not_after), "renew_at": acme_client.utc(renew_at),
            "attempts": 0, "next_attempt_at": None, "error": None,
            "updated_at": acme_client.utc(clock.now())})
    return f"certificate for {hostname} issued, valid until {acme_client.utc(facts.not_after)}"


def _failed(db, row: dict, error: Exception) -> str:
    attempts = row["attempts"] + 1
    retry = acme_client.utc(clock.now() + backoff(attempts))
    log.warning("certificate for %s failed (attempt %d): %s", row["hostname"], attempts, error)
    with transaction(db):
        db["certificates"].update(row["hostname"], {
            "state": VALID if row["state"] == VALID else FAILED, "attempts": attempts,
            "next_attempt_at": retry, "error": str(error)[:500],
            "updated_at": acme_client.utc(clock.now())})
    return f"certificate for {row['hostname']} failed: {error} (next attempt {retry})"


def _forget(db, settings, wanted: set[str]) -> list[str]:
    """Drop the rows and files of certificates no route wants (a deleted
    instance, an unpublished or passthrough site)."""
    done = []
    for (hostname,) in db.execute("SELECT hostname FROM certificates").fetchall():
        if hostname in wanted:
            continue
        Path(ingress.certificate_path(settings, hostname)).unlink(missing_ok=True)
        with transaction(db):
            db.execute("DELETE FROM certificates WHERE hostname = ?", [hostname])
        done.append(f"certificate for {hostname} forgotten")
    return done

