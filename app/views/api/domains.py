"""Custom domains: your own host names on your instances, served once a
DNS record you publish proves the name is yours. Each answer carries the
records to publish (txt_line, cname_line) and what the last look found."""
from flask import g
from flask.views import MethodView

from ... import domains
from . import pages, resource
from .feature_schemas import DomainCreateSchema, DomainMoveSchema, DomainSchema
from .schemas import PageArgs, page_of

bp = resource("custom_domains", "Your own domain names on your instances.")


@bp.route("/domains")
class Domains(MethodView):
    @bp.arguments(PageArgs, location="query")
    @bp.response(200, page_of(DomainSchema))
    def get(self, args):
        """Your domains, by name, with their state and proof instructions."""
        return pages.page(domains.of_member(g.user), args)

    @bp.arguments(DomainCreateSchema)
    @bp.response(201, DomainSchema)
    def post(self, body):
        """Claim a host name for a ready instance: pending until its proof
        is found (Warren looks once at once, then on a schedule)."""
        return domains.add(g.user, body.get("hostname"), body.get("instance"))


@bp.route("/domains/<int:domain_id>")
class Domain(MethodView):
    @bp.response(200, DomainSchema)
    def get(self, domain_id):
        """One of your domains, with the records that prove it."""
        return domains.get_domain(g.user, domain_id)

    @bp.response(200, DomainSchema)
    def delete(self, domain_id):
        """Give up a domain; Warren stops serving it at once."""
        return domains.remove(g.user, domain_id)


@bp.route("/domains/<int:domain_id>/check", methods=["POST"])
@bp.response(200, DomainSchema)
def check(domain_id):
    """Look for the proof now (at most every few seconds per domain)."""
    return domains.check_now(g.user, domain_id)


@bp.route("/domains/<int:domain_id>/move", methods=["POST"])
@bp.arguments(DomainMoveSchema)
@bp.response(200, DomainSchema)
def move(body, domain_id):
    """Attach the domain to another of your ready instances."""
    return domains.move(g.user, domain_id, body.get("instance"))
