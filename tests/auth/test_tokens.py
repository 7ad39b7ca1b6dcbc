"""Tokens and the roles matrix, below the API."""

from __future__ import annotations

import uuid

import pytest
from sqlalchemy import Engine
from sqlmodel import Session

from controlplane.auth.audit import REDACTED, redact
from controlplane.auth.errors import InvalidToken, TokenInvalid
from controlplane.auth.models import Role
from controlplane.auth.policy import Action, Principal
from controlplane.auth.tokens import create_token, hash_token, verify_token
from controlplane.errors import Forbidden, NotFound


def test_token_is_random_hashed_and_verifiable(engine: Engine) -> None:
    with Session(engine) as s:
        a = create_token(s, name="a", role=Role.OPERATOR)
        b = create_token(s, name="b", role=Role.OPERATOR)
        s.commit()
        assert a.token != b.token
        assert a.record.token_hash == hash_token(a.token)
        assert a.token not in a.record.model_dump_json()
        principal = verify_token(s, a.token)
        assert (principal.role, principal.token_name) == (Role.OPERATOR, "a")
        with pytest.raises(InvalidToken):
            verify_token(s, a.token[:-2] + "xx")
        with pytest.raises(TokenInvalid):
            create_token(s, name="c", role=Role.TENANT_ADMIN)


def test_other_tenant_is_not_found_not_forbidden() -> None:
    mine, theirs = uuid.uuid4(), uuid.uuid4()
    viewer = Principal(Role.TENANT_VIEWER, mine, "v")
    viewer.check(Action.INSTANCE_READ, tenant_id=mine)
    with pytest.raises(Forbidden):
        viewer.check(Action.INSTANCE_WRITE, tenant_id=mine)
    with pytest.raises(NotFound):
        viewer.check(Action.INSTANCE_WRITE, tenant_id=theirs)
    finance = Principal(Role.FINANCE, None, "f")
    finance.check(Action.INSTANCE_READ, tenant_id=theirs)
    with pytest.raises(Forbidden):
        finance.check(Action.INSTANCE_WRITE, tenant_id=theirs)


def test_audit_details_are_redacted() -> None:
    details = {"name": "x", "token": "cp_1", "nested": [{"db_password": "p", "port": 1}]}
    assert redact(details) == {
        "name": "x",
        "token": REDACTED,
        "nested": [{"db_password": REDACTED, "port": 1}],
    }
