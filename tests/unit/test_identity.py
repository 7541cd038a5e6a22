"""Unit tests of token verification and of reading the caller from RPC metadata (no processes: the
verifier is given its keys directly instead of fetching the JWKS)."""

from __future__ import annotations

import time

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from jose import jwk, jwt

from services.common.config import IdentityConfig
from services.common.errors import BadRequest, Forbidden, Unauthenticated
from services.common.identity import authenticate, bearer_token
from services.common.token_verifier import TokenVerifier

ISSUER, AUDIENCE, KID = "https://idp.example", "firecrest-mesh", "key-1"


def _pem(key) -> bytes:
    return key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                             serialization.NoEncryption())


PRIVATE = rsa.generate_private_key(public_exponent=65537, key_size=2048)
PUBLIC_PEM = PRIVATE.public_key().public_bytes(serialization.Encoding.PEM,
                                               serialization.PublicFormat.SubjectPublicKeyInfo)


@pytest.fixture
def verifier() -> TokenVerifier:
    v = TokenVerifier(IdentityConfig(ISSUER, "http://127.0.0.1:9/jwks", "", AUDIENCE, "preferred_username", None))
    public = jwk.construct(PUBLIC_PEM, "RS256").to_dict()
    v._keys = {KID: {**public, "kid": KID}}
    v._fetched_at = time.monotonic()  # fresh: no download is attempted
    return v


def token(drop=(), key=None, alg="RS256", kid=KID, **claims) -> str:
    now = int(time.time())
    payload = {"iss": ISSUER, "aud": AUDIENCE, "iat": now, "exp": now + 300, "preferred_username": "alice",
               **claims}
    payload = {k: v for k, v in payload.items() if k not in drop}
    return jwt.encode(payload, key or _pem(PRIVATE), algorithm=alg, headers={"kid": kid})


def _b64(data: bytes) -> str:
    import base64
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def hs256_with_public_key() -> str:
    """The algorithm-confusion forgery: HMAC-signed with the provider's public key as the secret."""
    import hashlib
    import hmac
    import json
    now = int(time.time())
    signing_input = (_b64(json.dumps({"alg": "HS256", "kid": KID}).encode()) + "."
                     + _b64(json.dumps({"iss": ISSUER, "aud": AUDIENCE, "exp": now + 60,
                                        "preferred_username": "alice"}).encode()))
    return signing_input + "." + _b64(hmac.new(PUBLIC_PEM, signing_input.encode(), hashlib.sha256).digest())


def test_valid_token_names_its_user_and_is_cached(verifier):
    t = token()
    first = verifier.verify(t)
    assert first.username == "alice" and first.access_token == t
    assert verifier.cached(t) is first and verifier.verify(t) is first
    assert t not in repr(first), "the token never appears in logs"


@pytest.mark.parametrize("case, make", [
    ("expired", lambda: token(exp=int(time.time()) - 10)),
    ("no exp", lambda: token(drop=("exp",))),
    ("nbf in the future", lambda: token(nbf=int(time.time()) + 600)),
    ("wrong audience", lambda: token(aud="someone-else")),
    ("no audience", lambda: token(drop=("aud",))),
    ("wrong issuer", lambda: token(iss="https://evil.example")),
    ("no issuer", lambda: token(drop=("iss",))),
    ("unknown kid", lambda: token(kid="other")),
    ("foreign key", lambda: token(key=_pem(rsa.generate_private_key(public_exponent=65537, key_size=2048)))),
    ("HS256 with the public key", lambda: hs256_with_public_key()),
    ("alg none", lambda: jwt.encode({"preferred_username": "alice"}, "", algorithm="HS256")
     .split(".")[0].replace("HS256", "none") + ".e30."),
    ("garbage", lambda: "not-a-token"),
])
def test_bad_tokens_are_unauthenticated_and_never_cached(verifier, case, make):
    t = make()
    with pytest.raises(Unauthenticated):
        verifier.verify(t)
    assert verifier.cached(t) is None


def test_alg_none_header_is_refused(verifier):
    import base64
    import json
    enc = lambda d: base64.urlsafe_b64encode(json.dumps(d).encode()).rstrip(b"=").decode()
    now = int(time.time())
    t = enc({"alg": "none", "kid": KID}) + "." + enc({"iss": ISSUER, "aud": AUDIENCE, "exp": now + 60,
                                                      "preferred_username": "alice"}) + "."
    with pytest.raises(Unauthenticated):
        verifier.verify(t)


def test_token_without_username_claim_is_400(verifier):
    with pytest.raises(BadRequest, match="'preferred_username' claim is missing"):
        verifier.verify(token(drop=("preferred_username",)))


@pytest.mark.parametrize("name", ["root; id", "../bob", "Alice", "-oProxyCommand=x", "a" * 40])
def test_invalid_usernames_are_refused(verifier, name):
    with pytest.raises(BadRequest):
        verifier.verify(token(preferred_username=name))


def test_bearer_scheme_is_case_insensitive():
    assert bearer_token([("authorization", "bearer abc")]) == ("abc", None)
    assert bearer_token([("Authorization", "BEARER abc"), ("x-firecrest-username", "bob")]) == ("abc", "bob")
    for bad in ([], [("authorization", "Token abc")], [("authorization", "Bearer ")]):
        with pytest.raises(Unauthenticated):
            bearer_token(bad)


def test_username_header_must_match_the_token(verifier):
    t = token()
    assert authenticate([("authorization", f"Bearer {t}"), ("x-firecrest-username", "alice")],
                        verifier).username == "alice"
    assert authenticate([("authorization", f"Bearer {t}")], verifier).username == "alice"
    with pytest.raises(Forbidden):
        authenticate([("authorization", f"Bearer {t}"), ("x-firecrest-username", "bob")], verifier)


def test_a_cached_token_stops_working_when_it_expires(verifier):
    t = token(exp=int(time.time()) + 1)
    verifier.verify(t)
    time.sleep(2.1)  # past exp: the cache must not outlive the token
    assert verifier.cached(t) is None
    with pytest.raises(Unauthenticated):
        verifier.verify(t)
