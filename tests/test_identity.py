"""Unit tests of reading the caller from gateway metadata."""

import pytest

from services.common.errors import BadRequest, Unauthenticated
from services.common.identity import caller_from_metadata


def test_caller_from_gateway_metadata():
    caller = caller_from_metadata([("x-firecrest-username", "alice"), ("authorization", "Bearer abc")])
    assert caller.username == "alice" and caller.access_token == "abc"
    assert "abc" not in repr(caller), "the token never appears in logs"


def test_no_token_is_unauthenticated():
    with pytest.raises(Unauthenticated):
        caller_from_metadata([("x-firecrest-username", "alice")])


def test_token_without_username_claim_is_400():
    with pytest.raises(BadRequest, match="'preferred_username' claim is missing"):
        caller_from_metadata([("authorization", "Bearer abc")])


@pytest.mark.parametrize("name", ["root; id", "../bob", "Alice", "-oProxyCommand=x", "a" * 40])
def test_invalid_usernames_are_refused(name):
    with pytest.raises(BadRequest):
        caller_from_metadata([("x-firecrest-username", name), ("authorization", "Bearer abc")])
