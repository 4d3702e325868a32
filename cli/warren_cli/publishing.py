"""How the world reaches your instances: `warren forward` (port forwards),
`warren site` (websites), `warren record` (DNS records) and `warren domain`
(custom domains)."""
import click

from .client import ApiError, Client
from .common import client, fail_on_errors, json_option, show

FORWARD_COLUMNS = ["id", "protocol", "public_port", "instance_port", "address"]
SITE_COLUMNS = ["url", "mode", "port", "certificate"]
RECORD_COLUMNS = ["id", "fqdn", "rtype", "value", "ttl"]
DOMAIN_COLUMNS = ["id", "hostname", "instance_name", "state", "checked_at", "result"]


@click.group()
def forward():
    """Ports of the co-op's public address forwarded to your instances."""


@forward.command("ls")
@click.argument("instance")
@json_option
@fail_on_errors
def forward_list(instance, as_json):
    """The forwards of INSTANCE."""
    api = client()
    show(api.every("list_forwards", instance_id=api.instance_by_name(instance)["id"]), as_json,
         FORWARD_COLUMNS)


@forward.command("add")
@click.argument("instance")
@click.argument("port", type=int)
@click.option("--public-port", type=int, default=None, help="Default: the first free one.")
@click.option("--protocol", type=click.Choice(["tcp", "udp"]), default="tcp", show_default=True)
@json_option
@fail_on_errors
def forward_add(instance, port, public_port, protocol, as_json):
    """Forward a public port to PORT of INSTANCE."""
    api = client()
    row = api.call("add_forward", instance_id=api.instance_by_name(instance)["id"],
                   json={"protocol": protocol, "instance_port": port, "public_port": public_port})
    if as_json:
        show(row, True)
    else:
        click.echo(f"{row['address']}:{row['public_port']}/{row['protocol']} now forwards to port "
                   f"{row['instance_port']} of {instance}.")


@forward.command("rm")
@click.argument("instance")
@click.argument("public_port", type=int)
@click.option("--protocol", type=click.Choice(["tcp", "udp"]), default="tcp", show_default=True)
@fail_on_errors
def forward_remove(instance, public_port, protocol):
    """Stop forwarding PUBLIC_PORT to INSTANCE."""
    api = client()
    instance_id = api.instance_by_name(instance)["id"]
    found = [row for row in api.every("list_forwards", instance_id=instance_id)
             if (row["public_port"], row["protocol"]) == (public_port, protocol)]
    if not found:
        raise ApiError(404, f"{instance} has no forward of port {public_port}/{protocol}.")
    api.call("remove_forward", instance_id=instance_id, forward_id=found[0]["id"])
    click.echo(f"Port {public_port}/{protocol} is no longer forwarded.")


@click.group()
def site():
    """Your instances' websites, at https://<instance's DNS name>/."""


def _site_row(row: dict) -> dict:
    certificate = row.get("certificate")
    return {**row, "certificate": f"{certificate['state']} {certificate.get('error') or ''}".strip()
            if certificate else "(the instance's own)"}


@site.command("show")
@click.argument("instance")
@json_option
@fail_on_errors
def site_show(instance, as_json):
    """The website of INSTANCE, with its certificate."""
    api = client()
    row = api.call("show_site", instance_id=api.instance_by_name(instance)["id"])
    show(row if as_json else _site_row(row), as_json, SITE_COLUMNS)


@site.command("publish")
@click.argument("instance")
@click.option("--mode", type=click.Choice(["terminate", "passthrough"]), default="terminate",
              show_default=True, help="terminate: the proxy holds the certificate and sends HTTP "
              "to --port; passthrough: TLS goes to the instance's port 443.")
@click.option("--port", type=int, default=None, help="terminate only (default 80).")
@json_option
@fail_on_errors
def site_publish(instance, mode, port, as_json):
    """Publish INSTANCE (or change how it is published)."""
    api = client()
    row = api.call("publish_site", instance_id=api.instance_by_name(instance)["id"],
                   json={"mode": mode, "port": port})
    show(row if as_json else _site_row(row), as_json, SITE_COLUMNS)


@site.command("unpublish")
@click.argument("instance")
@fail_on_errors
def site_unpublish(instance):
    """Take the website of INSTANCE down."""
    api = client()
    row = api.call("unpublish_site", instance_id=api.instance_by_name(instance)["id"])
    click.echo(f"{row['url']} is no longer published.")


@click.group()
def record():
    """Your DNS records below <you>.<zone>."""


@record.command("ls")
@json_option
@fail_on_errors
def record_list(as_json):
    """Your records."""
    show(client().every("list_records"), as_json, RECORD_COLUMNS)


@record.command("add")
@click.argument("name")
@click.argument("rtype", metavar="TYPE", type=str.upper)
@click.argument("value")
@click.option("--ttl", type=int, default=None, help="Seconds (default: the zone's).")
@json_option
@fail_on_errors
def record_add(name, rtype, value, ttl, as_json):
    """Add a record: NAME (blog, or _dmarc.web) TYPE (CNAME, TXT, MX, AAAA, SRV, CAA) VALUE."""
    row = client().call("add_record", json={"name": name, "rtype": rtype, "value": value, "ttl": ttl})
    show(row, as_json, RECORD_COLUMNS)


@record.command("rm")
@click.argument("record_id", type=int)
@fail_on_errors
def record_remove(record_id):
    """Remove the record with this id (see `warren record ls`)."""
    row = client().call("remove_record", record_id=record_id)
    click.echo(f"{row['fqdn']} {row['rtype']} {row['value']} removed.")


@click.group()
def domain():
    """Your own domain names on your instances."""


def _domain_id(api: Client, hostname: str) -> int:
    wanted = hostname.strip().lower().rstrip(".")
    for row in api.every("list_domains"):
        if row["hostname"] == wanted:
            return row["id"]
    raise ApiError(404, f"You have no domain {hostname}.")


def _show_domain(row: dict, as_json: bool) -> None:
    if as_json:
        show(row, True)
        return
    show(row, False, ["hostname", "instance_name", "state", "proof", "checked_at", "result",
                      "next_check_at"])
    click.echo("\nPublish " + ("this record" if row["apex"] else "one of these records") +
               " where your domain's DNS is run:")
    click.echo(f"  {row['txt_line']}")
    if not row["apex"]:
        click.echo(f"  {row['cname_line']}")


@domain.command("ls")
@json_option
@fail_on_errors
def domain_list(as_json):
    """Your domains and their state."""
    show(client().every("list_domains"), as_json, DOMAIN_COLUMNS)


@domain.command("add")
@click.argument("hostname")
@click.argument("instance")
@json_option
@fail_on_errors
def domain_add(hostname, instance, as_json):
    """Serve INSTANCE under HOSTNAME too, once you prove it is yours."""
    api = client()
    _show_domain(api.call("add_domain", json={"hostname": hostname,
                                              "instance": api.instance_by_name(instance)["id"]}),
                 as_json)


def _domain_command(name: str, operation: str, doc: str) -> None:
    @click.argument("hostname")
    @json_option
    @fail_on_errors
    def command(hostname, as_json):
        api = client()
        _show_domain(api.call(operation, domain_id=_domain_id(api, hostname)), as_json)
    command.__name__, command.__doc__ = f"domain_{name}", doc
    domain.command(name)(command)


_domain_command("show", "show_domain", "One domain, with the record that proves it.")
_domain_command("check", "check_domain", "Look for the proof of HOSTNAME now.")


@domain.command("mv")
@click.argument("hostname")
@click.argument("instance")
@fail_on_errors
def domain_move(hostname, instance):
    """Send HOSTNAME to another of your instances."""
    api = client()
    row = api.call("move_domain", domain_id=_domain_id(api, hostname),
                   json={"instance": api.instance_by_name(instance)["id"]})
    click.echo(f"{row['hostname']} now goes to {row['instance_name']}.")


@domain.command("rm")
@click.argument("hostname")
@fail_on_errors
def domain_remove(hostname):
    """Give up HOSTNAME; Warren stops serving it at once."""
    api = client()
    row = api.call("remove_domain", domain_id=_domain_id(api, hostname))
    click.echo(f"{row['hostname']} removed.")
