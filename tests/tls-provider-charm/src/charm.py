#!/usr/bin/env python3
"""tls-provider: a CA on the tls-certificates interface, for tests.

The relation side is the v4 library's TLSCertificatesProvidesV4, used as
canonical/self-signed-certificates-operator uses it: the leader keeps its CA
in an application secret, signs each outstanding request and publishes it
with set_relation_certificate (chain [certificate, CA]). The `mode` option
swaps the honest signature for one deliberate fault (see config.yaml); the
faulty certificates are built with `cryptography`, which the library itself
uses. A request is answered again whenever the mode, the validity or the CA
it was answered with changed.
"""

import datetime
import logging

import ops
from charmlibs.interfaces.tls_certificates import (
    Certificate,
    CertificateError,
    CertificateRequestAttributes,
    CertificateSigningRequest,
    PrivateKey,
    ProviderCertificate,
    ProviderCertificateError,
    TLSCertificatesProvidesV4,
)
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec

logger = logging.getLogger(__name__)

CA_LABEL = "fixture-ca"
MODES = (
    "honest",
    "wrong-sans",
    "wrong-key",
    "expired",
    "not-yet-valid",
    "wrong-ca",
    "ca-certificate",
    "intermediate",
    "deny",
    "silent",
)
CA_VALIDITY = datetime.timedelta(days=3650)
DAY = datetime.timedelta(days=1)


def parse_validity(text: str) -> datetime.timedelta:
    if text.isdigit():
        return datetime.timedelta(days=int(text))
    units = {"m": "minutes", "h": "hours", "d": "days", "w": "weeks"}
    if len(text) < 2 or text[-1] not in units or not text[:-1].isdigit() or int(text[:-1]) == 0:
        raise ValueError(f"certificate-validity {text!r} is not <n>m, <n>h, <n>d or <n>w")
    return datetime.timedelta(**{units[text[-1]]: int(text[:-1])})


def new_ca(common_name: str) -> tuple[Certificate, PrivateKey]:
    key = PrivateKey.generate()
    attributes = CertificateRequestAttributes(common_name=common_name, is_ca=True)
    return Certificate.generate_self_signed_ca(attributes, key, CA_VALIDITY), key


def crypto_key(key: PrivateKey):
    return serialization.load_pem_private_key(str(key).encode(), password=None)


def crypto_cert(cert: Certificate) -> x509.Certificate:
    return x509.load_pem_x509_certificate(str(cert).encode())


def build(
    csr: CertificateSigningRequest,
    issuer: Certificate,
    issuer_key: PrivateKey,
    not_before: datetime.datetime,
    not_after: datetime.datetime,
    public_key=None,
    drop_one_san: bool = False,
    is_ca: bool = False,
) -> Certificate:
    """A certificate for `csr` as the library would make it, with the fault asked for."""
    request = x509.load_pem_x509_csr(str(csr).encode())
    public_key = public_key or request.public_key()
    issuer_cert = crypto_cert(issuer)
    builder = (
        x509.CertificateBuilder()
        .subject_name(request.subject)
        .issuer_name(issuer_cert.subject)
        .public_key(public_key)
        .serial_number(x509.random_serial_number())
        .not_valid_before(not_before)
        .not_valid_after(not_after)
        .add_extension(x509.BasicConstraints(ca=is_ca, path_length=None), critical=True)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(public_key), critical=False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(issuer_cert.public_key()),
            critical=False,
        )
    )
    try:
        names = list(request.extensions.get_extension_for_class(x509.SubjectAlternativeName).value)
    except x509.ExtensionNotFound:
        names = []
    if drop_one_san and names:
        names = sorted(names, key=str)[1:]
    if names:
        builder = builder.add_extension(x509.SubjectAlternativeName(names), critical=False)
    return signed(builder, crypto_key(issuer_key))


def signed(builder: x509.CertificateBuilder, key) -> Certificate:
    cert = builder.sign(key, hashes.SHA256())
    return Certificate.from_string(cert.public_bytes(serialization.Encoding.PEM).decode())


def impostor_of(ca: Certificate) -> tuple[Certificate, PrivateKey]:
    """Another CA with exactly `ca`'s subject (so names alone match) and another key."""
    real = crypto_cert(ca)
    key = PrivateKey.generate()
    private = crypto_key(key)
    usage = x509.KeyUsage(
        digital_signature=True,
        content_commitment=False,
        key_encipherment=False,
        data_encipherment=False,
        key_agreement=False,
        key_cert_sign=True,
        crl_sign=True,
        encipher_only=False,
        decipher_only=False,
    )
    builder = (
        x509.CertificateBuilder()
        .subject_name(real.subject)
        .issuer_name(real.subject)
        .public_key(private.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(real.not_valid_before_utc)
        .not_valid_after(real.not_valid_after_utc)
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(private.public_key()), critical=False)
        .add_extension(usage, critical=True)
    )
    return signed(builder, private), key


def new_intermediate(ca: Certificate, ca_key: PrivateKey) -> tuple[Certificate, PrivateKey]:
    key = PrivateKey.generate()
    attributes = CertificateRequestAttributes(
        common_name="tls-provider-fixture intermediate", add_unique_id_to_subject_name=False
    )
    csr = CertificateSigningRequest.generate(attributes, key)
    return csr.sign(ca, ca_key, CA_VALIDITY / 2, is_ca=True), key


class TLSProviderCharm(ops.CharmBase):
    _stored = ops.StoredState()

    def __init__(self, framework: ops.Framework):
        super().__init__(framework)
        # CSR sha256 -> how it was last answered ("mode|validity|CA serial").
        self._stored.set_default(answered={})
        self.tls = TLSCertificatesProvidesV4(self, "certificates")
        for event in (
            self.on.install,
            self.on.leader_elected,
            self.on.config_changed,
            self.on.update_status,
            self.on.certificates_relation_joined,
            self.on.certificates_relation_changed,
        ):
            framework.observe(event, self._configure)

    def _configure(self, _event: ops.EventBase):
        if not self.unit.is_leader():
            self.unit.status = ops.ActiveStatus("standby (not the leader)")
            return
        mode = str(self.config["mode"])
        if mode not in MODES:
            self.unit.status = ops.BlockedStatus(f"mode {mode!r} is not one of {', '.join(MODES)}")
            return
        try:
            validity = parse_validity(str(self.config["certificate-validity"]))
        except ValueError as e:
            self.unit.status = ops.BlockedStatus(str(e))
            return
        ca, ca_key = self._ca()
        if ca is None:
            self.unit.status = ops.MaintenanceStatus("new CA made; signing from the next hook on")
            return
        outstanding = {
            r.certificate_signing_request.get_sha256_hex()
            for r in self.tls.get_outstanding_certificate_requests()
        }
        signature = f"{mode}|{validity}|{crypto_cert(ca).serial_number}"
        answered = dict(self._stored.answered)
        for request in self.tls.get_certificate_requests():
            digest = request.certificate_signing_request.get_sha256_hex()
            settled = mode in ("deny", "silent") or digest not in outstanding
            if answered.get(digest) == signature and settled:
                continue
            self._answer(request, mode, validity, ca, ca_key)
            answered[digest] = signature
        self._stored.answered = answered
        self.unit.status = ops.ActiveStatus(f"{mode}; CA {ca.common_name}")

    def _ca(self) -> tuple[Certificate | None, PrivateKey | None]:
        """The CA, made when missing; None after a rotation (as the real operator)."""
        common_name = str(self.config["ca-common-name"])
        try:
            secret = self.model.get_secret(label=CA_LABEL)
        except ops.SecretNotFoundError:
            secret = None
        if secret is not None:
            content = secret.get_content(refresh=True)
            ca = Certificate.from_string(content["ca-certificate"])
            if ca.common_name == common_name:
                return ca, PrivateKey.from_string(content["private-key"])
        self.tls.revoke_all_certificates()
        ca, key = new_ca(common_name)
        content = {"ca-certificate": str(ca), "private-key": str(key)}
        if secret is None:
            self.app.add_secret(content, label=CA_LABEL)
        else:
            secret.set_content(content)
        logger.info("made the CA %r; every certificate issued before is revoked", common_name)
        return None, None

    def _answer(self, request, mode, validity, ca, ca_key):
        csr = request.certificate_signing_request
        now = datetime.datetime.now(datetime.timezone.utc)
        chain_tail = [ca]
        if mode == "silent":
            logger.info("mode silent: not answering relation %d", request.relation_id)
            return
        if mode == "deny":
            self.tls.set_relation_error(
                ProviderCertificateError(
                    relation_id=request.relation_id,
                    certificate_signing_request=csr,
                    error=CertificateError(
                        code=201,
                        name="SERVER_NOT_AVAILABLE",
                        message="the fixture denies every request in mode deny",
                    ),
                )
            )
            return
        if mode == "honest":
            certificate = csr.sign(ca, ca_key, validity, is_ca=request.is_ca)
        elif mode == "intermediate":
            intermediate, intermediate_key = new_intermediate(ca, ca_key)
            certificate = build(csr, intermediate, intermediate_key, now, now + validity)
            chain_tail = [intermediate, ca]
        elif mode == "wrong-ca":
            impostor, impostor_key = impostor_of(ca)
            certificate = build(csr, impostor, impostor_key, now, now + validity)
        else:
            faults = {
                "wrong-sans": dict(drop_one_san=True),
                "wrong-key": dict(public_key=ec.generate_private_key(ec.SECP256R1()).public_key()),
                "expired": dict(not_before=now - 2 * DAY, not_after=now - DAY),
                "not-yet-valid": dict(not_before=now + DAY, not_after=now + DAY + validity),
                "ca-certificate": dict(is_ca=True),
            }[mode]
            dates = dict(not_before=now, not_after=now + validity)
            dates.update({k: faults.pop(k) for k in ("not_before", "not_after") if k in faults})
            certificate = build(csr, ca, ca_key, **dates, **faults)
        self.tls.set_relation_certificate(
            ProviderCertificate(
                relation_id=request.relation_id,
                certificate=certificate,
                certificate_signing_request=csr,
                ca=ca,
                chain=[certificate, *chain_tail],
            )
        )
        logger.info("answered a request on relation %d (mode %s)", request.relation_id, mode)


if __name__ == "__main__":
    ops.main(TLSProviderCharm)
