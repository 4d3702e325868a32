"""What every request and response goes through on its way in and out:
security headers on every response (no framing, no inline script, no
content sniffing, no referrer sent to other sites), and the client address
taken from X-Forwarded-For only when a trusted reverse proxy sent it."""
import ipaddress

from werkzeug.middleware.proxy_fix import ProxyFix

CONTENT_SECURITY_POLICY = "; ".join((
    "default-src 'self'",
    "object-src 'none'",
    "base-uri 'self'",
    "form-action 'self'",
    "frame-ancestors 'none'",
))
HEADERS = {
    "Content-Security-Policy": CONTENT_SECURITY_POLICY,
    "X-Frame-Options": "DENY",  # frame-ancestors for browsers that predate it
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "same-origin",
}


def console_policy(scheme: str, host: str) -> str:
    """The policy of the console page. Its socket is named explicitly
    (browsers before CSP 3 do not count ws: as 'self'), and style elements
    are allowed: xterm.js sizes and colours the terminal through <style>
    elements it writes. Scripts stay limited to Warren's own files."""
    socket = f"{'wss' if scheme == 'https' else 'ws'}://{host}"
    return "; ".join((CONTENT_SECURITY_POLICY, f"connect-src 'self' {socket}",
                      "style-src 'self' 'unsafe-inline'"))


def docs_policy() -> str:
    """The policy of the API's docs page: Swagger UI (served from Warren's
    own origin) styles elements inline and draws its icons from data: URLs;
    scripts stay limited to Warren's own files."""
    return "; ".join((CONTENT_SECURITY_POLICY, "style-src 'self' 'unsafe-inline'",
                      "img-src 'self' data:"))


def add_security_headers(response):
    """Put the security headers on a response (a view may have set its own)."""
    for name, value in HEADERS.items():
        response.headers.setdefault(name, value)
    return response


class TrustedProxies:
    """WSGI middleware: requests from a trusted proxy get their client address
    and scheme from X-Forwarded-For and X-Forwarded-Proto (the last hop, the
    one the proxy itself added); from anyone else those headers are ignored,
    so a client cannot choose the address it is throttled under."""

    def __init__(self, app, networks: tuple[str, ...]):
        self.app = app
        self.forwarded = ProxyFix(app, x_for=1, x_proto=1, x_host=0)
        self.networks = tuple(ipaddress.ip_network(network) for network in networks)

    def trusts(self, address: str | None) -> bool:
        """True when the direct peer is one of the trusted proxies."""
        try:
            ip = ipaddress.ip_address(address or "")
        except ValueError:
            return False
        if ip.version == 6 and ip.ipv4_mapped:  # a dual-stack listener's view of an IPv4 peer
            ip = ip.ipv4_mapped
        return any(ip in network for network in self.networks)

    def __call__(self, environ, start_response):
        if self.trusts(environ.get("REMOTE_ADDR")):
            return self.forwarded(environ, start_response)
        return self.app(environ, start_response)


def trusted_networks(settings) -> tuple[str, ...]:
    """The configured proxies, and the ingress proxy when Warren is served
    through it (WARREN_PUBLIC_HOSTNAME): it reaches gunicorn from the
    loopback address, and sets X-Forwarded-For itself (never passing on
    the client's own)."""
    ingress = ("127.0.0.1/32",) if settings.public_hostname else ()
    return tuple(dict.fromkeys(settings.trusted_proxies + ingress))


def cookies_secure(settings) -> bool:
    """Secure cookies behind TLS: when configured, or when Warren is served
    through the ingress proxy, which redirects plain HTTP to HTTPS."""
    return settings.cookie_secure or bool(settings.public_hostname)


def init_app(app):
    """Add the headers to every response and believe only trusted proxies."""
    app.after_request(add_security_headers)
    app.wsgi_app = TrustedProxies(app.wsgi_app, trusted_networks(app.config["WARREN"]))
