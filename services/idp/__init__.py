"""The embedded OpenID Connect identity provider (client credentials grant only).

A small local provider so firecrest-mesh works without an external IdP: it serves the discovery
document, the JWKS and a token endpoint that issues RS256 JWT access tokens for the clients listed
under `identity.embedded_provider` in the configuration. Run it with `python -m services.idp`.

Modules: `state_files` (private files in the state folder), `signing_key` (the RSA key),
`client_secrets` (client secrets), `clients` (the OAuth2 client registry), `tokens` (the JWT generator),
`discovery` (the OIDC discovery document), `app` (the Flask application), `serve` (the HTTP server).
Other components get tokens with `services.common.oidc_client`, as from any OIDC provider.
"""
