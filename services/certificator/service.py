"""gRPC servicer of firecrest_mesh.certificator.v1.CertificatorService.

Only the services reach it (mutual TLS, see services.common.server); it still trusts none of them
with identity: the user's token in the request is verified here before anything is signed."""

from __future__ import annotations

import logging

from google.protobuf.timestamp_pb2 import Timestamp

from firecrest_mesh.certificator.v1 import certificator_pb2, certificator_pb2_grpc
from services.common import logs, metrics
from services.common.config import Config
from services.common.errors import ApiError, Forbidden
from services.certificator.ca import load_or_create_ca
from services.certificator.signer import sign_user_certificate
from services.common.token_verifier import TokenVerifier

log = logging.getLogger(__name__)


class CertificatorService(certificator_pb2_grpc.CertificatorServiceServicer):
    def __init__(self, config: Config):
        self._config = config
        self._ca_key = load_or_create_ca(config.state_dir)
        self._verifier = TokenVerifier(config.identity)

    async def SignCertificate(self, request: certificator_pb2.SignCertificateRequest, context):
        """Signs, or refuses (an invalid token, a username the token does not name); both are counted
        in `firecrest_certificates_total{outcome, mode}`."""
        mode = "command" if request.force_command else "session"
        try:
            response = await self._sign(request)
        except ApiError:
            metrics.CERTIFICATES.labels("refused", mode).inc()
            raise
        metrics.CERTIFICATES.labels("signed", mode).inc()
        return response

    async def _sign(self, request: certificator_pb2.SignCertificateRequest):
        token_user = (await self._verifier.verify_async(request.access_token)).username
        if request.username != token_user:
            log.warning("refused: certificate asked for %r with a token of %r", request.username, token_user)
            raise Forbidden("The requested username does not match the access token")
        logs.username.set(token_user)
        lifetime = self._config.certificator.certificate_lifetime_seconds
        if 0 < request.validity_seconds < lifetime:
            lifetime = request.validity_seconds
        # The configured restriction wins: a caller may not widen it.
        sources = self._config.certificator.source_addresses or tuple(request.source_addresses)
        signed = sign_user_certificate(self._ca_key, request.public_key, token_user, lifetime,
                                       request_tag=logs.request_id.get(),
                                       force_command=request.force_command, source_addresses=sources)
        log.info("signed certificate", extra={"fields": {
            "key_id": signed.key_id, "serial": signed.serial, "lifetime": lifetime,
            "mode": "command" if request.force_command else "session"}})
        return certificator_pb2.SignCertificateResponse(
            certificate=signed.certificate,
            valid_after=Timestamp(seconds=signed.valid_after),
            valid_before=Timestamp(seconds=signed.valid_before),
            key_id=signed.key_id, serial=signed.serial)


def register(server, config: Config):
    certificator_pb2_grpc.add_CertificatorServiceServicer_to_server(CertificatorService(config), server)
    return ()
