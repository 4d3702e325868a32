"""Certificates from an ACME directory (RFC 8555) with HTTP-01 challenges,
through `acme`, certbot's protocol library; and the X.509 facts Warren
reads from a certificate. The only module that imports acme, josepy and
cryptography's X.509 parts for certificates.

The account key is made once and kept (owner-only) next to the proxy's
files; the account is looked up again by its key at every issuance (a
newAccount request with the same key answers with the existing account),
so a directory that forgot it (a test CA restarted) gets it registered
again. Each certificate gets a fresh P-256 key.
"""
import logging
import os
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Callable

import josepy
import requests
from acme import challenges, client, errors as acme_errors, messages
from acme.crypto_util import make_csr
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa

from .errors import BackendError, BackendUnavailable

log = logging.getLogger(__name__)
USER_AGENT = "warren-ingress"
TIMEOUT = 30  # seconds per HTTP request to the directory
ORDER_DEADLINE = timedelta(seconds=90)


class AcmeError(BackendError):
    """The ACME directory refused or failed an issuance."""


@dataclass(frozen=True)
class Issued:
    """A certificate: the chain (leaf first) and its private key, PEM."""
    chain_pem: str
    key_pem: str


@dataclass(frozen=True)
class Facts:
    """What Warren keeps of a certificate."""
    serial: str
    not_before: datetime
    not_after: datetime


def facts(pem: str) -> Facts:
    """Serial and validity of the first certificate in a PEM text."""
    certificate = x509.load_pem_x509_certificate(pem.encode())
    return Facts(f"{certificate.serial_number:X}", certificate.not_valid_before_utc,
                 certificate.not_valid_after_utc)


def _account_key(path: Path) -> josepy.JWKRSA:
    """The account key, made on first use (RSA 2048, the key every ACME CA takes)."""
    if not path.exists():
        key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                serialization.NoEncryption())
        temporary = path.with_suffix(".tmp")
        with open(temporary, "wb", opener=lambda name, flags: os.open(name, flags, 0o600)) as out:
            out.write(pem)
        temporary.rename(path)
    return josepy.JWKRSA(key=serialization.load_pem_private_key(path.read_bytes(), password=None))


def _new_key_pem() -> bytes:
    key = ec.generate_private_key(ec.SECP256R1())
    return key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                             serialization.NoEncryption())


def _client(directory: str, key_path: Path, email: str, ca_file: str) -> client.ClientV2:
    net = client.ClientNetwork(_account_key(key_path), user_agent=USER_AGENT,
                               verify_ssl=ca_file or True, timeout=TIMEOUT)
    acme = client.ClientV2(client.ClientV2.get_directory(directory, net), net)
    registration = messages.NewRegistration.from_data(email=email or None,
                                                      terms_of_service_agreed=True)
    try:
        acme.new_account(registration)
    except acme_errors.ConflictError as existing:  # this key has an account already
        net.account = messages.RegistrationResource(uri=existing.location, body=messages.Registration())
    return acme


def issue(directory: str, key_path: Path, email: str, ca_file: str, hostname: str,
          publish: Callable[[str, str], None], withdraw: Callable[[str], None]) -> Issued:
    """A certificate for hostname: an order, its HTTP-01 challenge answered
    by publish(token, key authorization) until the CA has looked, then the
    chain. withdraw(token) runs in every case."""
    key_pem = _new_key_pem()
    tokens = []
    try:
        acme = _client(directory, key_path, email, ca_file)
        order = acme.new_order(make_csr(key_pem, [hostname]))
        for authorization in order.authorizations:
            if authorization.body.status == messages.STATUS_VALID:
                continue  # the CA remembers an earlier proof
            challenge = next((c for c in authorization.body.challenges
                              if isinstance(c.chall, challenges.HTTP01)), None)
            if challenge is None:
                raise AcmeError(f"the ACME directory offers no HTTP-01 challenge for {hostname}")
            response, validation = challenge.response_and_validation(acme.net.key)
            token = challenge.chall.encode("token")
            publish(token, validation)
            tokens.append(token)
            acme.answer_challenge(challenge, response)
        deadline = datetime.now() + ORDER_DEADLINE
        order = acme.poll_and_finalize(order, deadline)
    except requests.exceptions.ConnectionError as error:
        raise BackendUnavailable(f"the ACME directory {directory} is not reachable "
                                 f"({type(error).__name__})") from error
    except requests.exceptions.RequestException as error:
        raise AcmeError(f"talking to the ACME directory {directory} failed: {error}") from error
    except acme_errors.ValidationError as error:
        problems = [str(c.error.detail or c.error.typ) for a in error.failed_authzrs
                    for c in a.body.challenges if c.error is not None]
        raise AcmeError(f"the CA could not validate {hostname}: {'; '.join(problems)}") from error
    except (acme_errors.Error, messages.Error, josepy.errors.Error) as error:
        raise AcmeError(f"the ACME directory refused the certificate for {hostname}: "
                        f"{error}") from error
    finally:
        for token in tokens:
            try:
                withdraw(token)
            except Exception:  # a left-over token is harmless; the error above matters more
                log.exception("could not withdraw ACME token %s", token)
    return Issued(order.fullchain_pem, key_pem.decode())


def renewal_time(not_before: datetime, not_after: datetime, before: timedelta) -> datetime:
    """When to renew: `before` ahead of expiry, or with a third of the
    lifetime left when that is shorter (short-lived certificates)."""
    return not_after - min(before, (not_after - not_before) / 3)


def utc(moment: datetime) -> str:
    """A moment as the store keeps it."""
    return moment.astimezone(timezone.utc).isoformat(timespec="seconds")
