"""Websites: a member publishes one of their ready instances through the
co-op's ingress proxy under the instance's DNS name, https://<fqdn>/.

Two modes. terminate: the proxy holds an automatic certificate and sends
plain HTTP to the port the member chooses (80 by default), with the
client's address in X-Forwarded-For; plain HTTP is redirected to HTTPS.
passthrough: TLS goes untouched to the instance's port 443 (the member's
server holds the certificate) and port 80 reaches the instance's port 80,
so its own ACME HTTP-01 works.

A row in the sites table is what should be; the worker's ingress job
makes the proxy match it (app/ingress.py) and issues the certificate
(app/certificates.py). A member only ever names an instance of their own
(anyone else's is 404), and the host name is the instance's own DNS name,
so no member can publish under another's name.

While a site is published its DNS name points at the proxy's public
address (name_addresses): visitors and the ACME CA must reach the proxy,
never the private bridge address. Unpublished, it points at the
instance again.
"""
import logging
import re

from . import addresses, audit, certificates, domains, jobs
from .config import current_settings
from .errors import BackendUnavailable, Conflict, ValidationError
from .ingress import MODES, PASSTHROUGH, TERMINATE, public_address, sync
from .instances import get_instance, record_event
from .statuses import READY
from .store import get_db, now, transaction

log = logging.getLogger(__name__)
PORT = re.compile(r"[0-9]{1,5}")
DEFAULT_PORT = 80


def of_instance(db, instance_id: int) -> dict | None:
    """The instance's site with its URL and its certificate's row, or None."""
    rows = list(db["sites"].rows_where("instance_id = ?", [instance_id]))
    if not rows:
        return None
    site = dict(rows[0])
    fqdn = db["instances"].get(instance_id)["fqdn"]
    site.update(url=f"https://{fqdn}/", hostname=fqdn,
                certificate=certificates.of_hostname(db, fqdn) if site["mode"] == TERMINATE else None)
    return site


def name_addresses(db, settings, instance: dict) -> tuple[str, str | None]:
    """(IPv4, IPv6 or None) the instance's DNS name should point at: the
    ingress's public address, and no AAAA (the proxy has no IPv6 address
    of its own), while the instance has a published site and the proxy
    is on; else the instance's own addresses."""
    public = public_address(settings)
    if public is not None and db["sites"].count_where("instance_id = ?", [instance["id"]]):
        return public, None
    return instance["ipv4"], addresses.ipv6_of(instance, settings)


def _validate(mode, port) -> tuple[str, int]:
    errors: dict[str, list[str]] = {}
    mode = (mode or "").strip().lower()
    if mode not in MODES:
        errors["mode"] = [f"Choose {TERMINATE} or {PASSTHROUGH}."]
    text = str(port if port is not None else "").strip() or str(DEFAULT_PORT)
    if not PORT.fullmatch(text) or not 1 <= int(text) <= 65535:
        errors["port"] = ["Give the port your web server listens on, from 1 to 65535."]
    if errors:
        raise ValidationError(errors)
    return mode, 443 if mode == PASSTHROUGH else int(text)


def publish(user: dict, instance_id, mode, port=None) -> dict:
    """Publish one of the member's ready instances (or change how); the site row."""
    instance = get_instance(user, instance_id)
    settings = current_settings()
    if public_address(settings) is None:
        raise Conflict("Websites are off on this server: it has no public address yet "
                       "(an admin sets WARREN_INGRESS_ADDRESS).")
    mode, port = _validate(mode, port)
    if instance["status"] != READY:
        raise Conflict(f"{instance['name']} is {instance['status']}; publish it once it is ready.")
    db = get_db()
    detail = f"https://{instance['fqdn']}/ {mode}" + (f" -> port {port}" if mode == TERMINATE else "")
    with audit.audited(db, user["username"], "site.publish", instance["fqdn"],
                       member=user["username"], detail=detail):
        with transaction(db):
            db.execute("INSERT INTO sites (instance_id, mode, port, created_at) VALUES (?, ?, ?, ?) "
                       "ON CONFLICT (instance_id) DO UPDATE SET mode = excluded.mode, "
                       "port = excluded.port", [instance["id"], mode, port, now()])
            record_event(db, instance["id"], "website", f"Publishing {detail}.")
            jobs.enqueue(db, instance["id"], "ingress")
    jobs.wake_worker(settings)
    return of_instance(db, instance["id"])


def unpublish(user: dict, instance_id) -> dict:
    """Take the member's site down; the removed row."""
    instance = get_instance(user, instance_id)
    db = get_db()
    site = of_instance(db, instance["id"])
    if site is None:
        raise Conflict("That instance is not published.")
    with audit.audited(db, user["username"], "site.unpublish", instance["fqdn"],
                       member=user["username"], detail=site["url"]):
        with transaction(db):
            db.execute("DELETE FROM sites WHERE instance_id = ?", [instance["id"]])
            record_event(db, instance["id"], "website", f"Unpublished {site['url']}.")
            jobs.enqueue(db, instance["id"], "ingress")
    jobs.wake_worker(current_settings())
    return site


def after_ready(db, instance: dict) -> None:
    """An instance became ready (again): its site, if any, is routed at once."""
    if db["sites"].count_where("instance_id = ?", [instance["id"]]):
        with transaction(db):
            jobs.enqueue(db, instance["id"], "ingress")


def withdraw(db, settings, instance: dict) -> None:
    """Before an instance goes away (or gives up its address): drop its
    site and its routes from the proxy, so the name never leads to an
    address another instance may get next. Its certificate is no longer
    served; the next certificates pass forgets it."""
    with transaction(db):
        db.execute("DELETE FROM sites WHERE instance_id = ?", [instance["id"]])
    try:
        sync(db, settings)
    except BackendUnavailable as error:  # its files are right: it starts without the route
        log.warning("the ingress proxy was not told of %s going: %s", instance["fqdn"], error)


def domains_changed(db, instance_ids: list[int]) -> None:
    """A custom domain was verified, lapsed, moved or removed: the ingress
    job of each instance concerned routes it (or stops) and fetches its
    certificate (merged with one already waiting)."""
    with transaction(db):
        for instance_id in instance_ids:
            if db["instances"].count_where("id = ?", [instance_id]):
                jobs.enqueue(db, instance_id, "ingress")
    if instance_ids:
        jobs.wake_worker(current_settings())


domains.ROUTE_HOOKS.append(domains_changed)  # once, when this module is first imported
