"""Websites: an instance published through the co-op's ingress proxy at
https://<its DNS name>/, in terminate or passthrough mode. Saved at once;
the proxy follows within seconds (the instance's progress tells when)."""
from flask import g
from flask.views import MethodView

from ... import instances, sites
from ...errors import NotFound
from ...store import get_db
from . import resource
from .feature_schemas import SitePublishSchema, SiteSchema

bp = resource("sites", "Your instances' websites (the ingress proxy).")


@bp.route("/instances/<int:instance_id>/site")
class Site(MethodView):
    @bp.response(200, SiteSchema)
    def get(self, instance_id):
        """The instance's website with its certificate; 404 while it is not published."""
        row = instances.get_instance(g.user, instance_id)  # 404 for anyone else's
        site = sites.of_instance(get_db(), row["id"])
        if site is None:
            raise NotFound(f"{row['name']} is not published.")
        return site

    @bp.arguments(SitePublishSchema)
    @bp.response(200, SiteSchema)
    def put(self, body, instance_id):
        """Publish a ready instance, or change how it is published."""
        return sites.publish(g.user, instance_id, body["mode"], body.get("port"))

    @bp.response(200, SiteSchema)
    def delete(self, instance_id):
        """Take the website down; what it was."""
        return sites.unpublish(g.user, instance_id)
