"""The admin's page about the zone: how it is served and the DS record its
parent needs (DNSSEC)."""
from flask import render_template

from ... import dns
from ...config import current_settings
from ...dns.dnssec import ds_records
from ...errors import WarrenError
from ..guards import admin_required
from . import bp


@bp.route("/zone")
@admin_required
def dns_page():
    settings = current_settings()
    try:
        ds, problem = ds_records(dns.zone_from_settings(settings)), None
    except WarrenError as error:
        ds, problem = [], str(error)
    return render_template("admin/zone.html", settings=settings, ds=ds, problem=problem)
