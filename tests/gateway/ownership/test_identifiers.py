"""Object ids in one spelling (OWASP API1, BOLA) and claims bound to parameters and body
fields; pure functions, no I/O."""

from __future__ import annotations

import uuid
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from bastion.errors import Hidden, InvalidInput
from bastion.gateway.bindings import Binding, Bindings
from bastion.gateway.caller import Caller
from bastion.gateway.identifiers import IdForm, canonical, canonical_json, form_of, schema_at

NOW = 1_700_000_000.0
UPPER = "A0EEBC99-9C0B-4EF8-BB6D-6BB9BD380A11"
LOWER = UPPER.lower()


@pytest.mark.parametrize(
    ("value", "form", "expected"),
    [
        ("1", IdForm.INTEGER, "1"),
        ("01", IdForm.INTEGER, "1"),
        ("+1", IdForm.INTEGER, "1"),
        ("-0", IdForm.INTEGER, "0"),
        ("000", IdForm.INTEGER, "0"),
        (" 1", IdForm.INTEGER, None),
        ("1.0", IdForm.INTEGER, None),
        ("1_0", IdForm.INTEGER, None),  # Python's int() would read it as 10
        ("\u0661", IdForm.INTEGER, None),  # ARABIC-INDIC DIGIT ONE, which int() accepts
        ("0x1", IdForm.INTEGER, None),
        (UPPER, IdForm.UUID, LOWER),
        ("{" + UPPER + "}", IdForm.UUID, LOWER),
        ("urn:uuid:" + UPPER, IdForm.UUID, LOWER),
        (UPPER.replace("-", ""), IdForm.UUID, LOWER),
        ("a0ee-bc99-9c0b-4ef8-bb6d-6bb9-bd38-0a11", IdForm.UUID, LOWER),  # PostgreSQL reads it
        ("-" + LOWER, IdForm.UUID, None),
        (LOWER[:-1] + "g", IdForm.UUID, None),
        ("007", IdForm.STRING, "007"),
        ("", IdForm.STRING, None),
        ("007", IdForm.AUTO, "7"),
        (UPPER, IdForm.AUTO, LOWER),
        ("note-7", IdForm.AUTO, "note-7"),
        ("7 ", IdForm.AUTO, None),
        ("", IdForm.AUTO, None),
    ],
)
def test_canonical_spellings(value: str, form: IdForm, expected: str | None) -> None:
    assert canonical(value, form) == expected


@given(st.integers(min_value=-(10**30), max_value=10**30), st.integers(0, 5), st.booleans())
def test_every_spelling_of_an_integer_is_one_id(number: int, zeros: int, plus: bool) -> None:
    """Whatever the padding or sign, one integer has one canonical spelling."""
    sign = "-" if number < 0 else ("+" if plus else "")
    spelled = f"{sign}{'0' * zeros}{abs(number)}"
    assert canonical(spelled, IdForm.INTEGER) == str(number)
    assert canonical(spelled, IdForm.AUTO) == str(number)


@given(st.uuids(), st.booleans(), st.booleans())
def test_every_spelling_of_a_uuid_is_one_id(value: uuid.UUID, upper: bool, bare: bool) -> None:
    """RFC 9562 §4: UUIDs are case-insensitive on input and written lower-case."""
    text = value.hex if bare else str(value)
    assert canonical(text.upper() if upper else text, IdForm.UUID) == str(value)


@given(st.text(max_size=40), st.sampled_from(list(IdForm)))
def test_canonical_is_a_fixed_point(value: str, form: IdForm) -> None:
    """A canonical id is its own canonical form: the registry and the upstream path see
    exactly one spelling."""
    found = canonical(value, form)
    if found is not None:
        assert canonical(found, form) == found


def test_ids_in_json() -> None:
    assert canonical_json(1, IdForm.INTEGER) == "1"
    assert canonical_json("01", IdForm.AUTO) == "1"
    for value in (True, 1.0, None, {"id": 1}, [1]):
        assert canonical_json(value, IdForm.AUTO) is None
    assert canonical_json(1, IdForm.UUID) is None


def test_forms_from_schemas() -> None:
    assert form_of({"type": "integer", "minimum": 1}) is IdForm.INTEGER
    assert form_of({"type": ["integer", "null"]}) is IdForm.INTEGER
    assert form_of({"type": "string", "format": "uuid"}) is IdForm.UUID
    assert form_of({"type": "string", "pattern": "^[a-z]+$"}) is IdForm.STRING
    assert form_of({"anyOf": [{"type": "integer"}]}) is IdForm.AUTO
    assert form_of(None) is IdForm.AUTO
    schema: dict[str, Any] = {
        "type": "object",
        "properties": {"owner": {"$ref": "#/$defs/user"}},
        "allOf": [{"properties": {"items": {"items": {"type": "integer"}}}}],
        "$defs": {"user": {"properties": {"id": {"type": "string", "format": "uuid"}}}},
    }

    def resolve(ref: str) -> object:
        return schema["$defs"][ref.rsplit("/", 1)[1]]

    assert form_of(schema_at(schema, "/owner/id", resolve)) is IdForm.UUID
    assert form_of(schema_at(schema, "/items/3", resolve)) is IdForm.INTEGER
    assert schema_at(schema, "/missing", resolve) is None


def _caller(**claims: Any) -> Caller:
    return Caller(
        issuer="bastion",
        subject="alice",
        client_id="app",
        scopes=frozenset(),
        claims={"sub": "alice", **claims},
        expires_at=NOW + 60,
        jti="j",
    )


def test_parameters_bound_to_claims() -> None:
    bindings = Bindings(
        path=(Binding("id", "sub", IdForm.STRING),),
        query=(Binding("org", "org_id", IdForm.INTEGER),),
    )
    caller = _caller(org_id=42)
    bindings.check_params(caller, {"id": "alice"}, {"org": "42"})
    bad: list[tuple[dict[str, str], dict[str, str | list[str]]]] = [
        ({"id": "bob"}, {"org": "42"}),
        ({"id": "alice"}, {}),
        ({"id": "alice"}, {"org": ["42", "43"]}),
        ({"id": "alice"}, {"org": "43"}),
    ]
    for params, query in bad:
        with pytest.raises(Hidden) as caught:
            bindings.check_params(caller, params, query)
        assert caught.value.status == 404
        assert caught.value.detail == "No such resource."


def test_query_ids_must_be_canonical() -> None:
    """The query reaches the upstream as sent, so "042" is refused rather than compared
    as 42 and forwarded as 042."""
    bindings = Bindings(query=(Binding("org", "org_id", IdForm.INTEGER),))
    with pytest.raises(InvalidInput):
        bindings.check_params(_caller(org_id=42), {}, {"org": "042"})


def test_body_bound_to_claim_refuses_others() -> None:
    bindings = Bindings(body=(Binding("/username", "sub", IdForm.STRING),))
    bindings.bind_body(_caller(), {"username": "alice"})
    for document in ({"username": "bob"}, {}, {"username": ["alice"]}, {"username": None}):
        with pytest.raises(Hidden):
            bindings.bind_body(_caller(), document)


def test_body_bound_to_claim_in_canonical_form() -> None:
    """A numeric user id bound to an integer field: "007" must not pass as 7's."""
    bindings = Bindings(body=(Binding("/user_id", "uid", IdForm.AUTO),))
    document: dict[str, Any] = {"user_id": "0042"}
    bindings.bind_body(_caller(uid=42), document)
    assert document == {"user_id": "42"}  # the upstream sees the canonical spelling
    with pytest.raises(Hidden):
        bindings.bind_body(_caller(uid=42), {"user_id": 43})


def test_body_bound_to_claim_set_by_the_gateway() -> None:
    bindings = Bindings(
        body=(Binding("/username", "sub", IdForm.STRING), Binding("/uid", "uid", IdForm.INTEGER)),
        set_body=True,
    )
    document: dict[str, Any] = {"username": "bob", "text": "hi"}
    bindings.bind_body(_caller(uid="7"), document)
    assert document == {"username": "alice", "uid": 7, "text": "hi"}
    with pytest.raises(InvalidInput):
        bindings.bind_body(_caller(uid="7"), ["not", "an", "object"])


@pytest.mark.parametrize("name", ["USER_ID", "user.id", "user id", "user[id", "User-Id"])
def test_a_second_spelling_of_a_bound_query_name_is_refused(name: str) -> None:
    """ASP.NET reads query names case-insensitively and PHP turns ".", " " and "[" into
    "_": another spelling could carry a second value past the one compared."""
    bindings = Bindings(query=(Binding("user_id", "sub", IdForm.STRING),))
    bindings.check_params(_caller(), {}, {"user_id": "alice", "other": "x"})
    with pytest.raises(InvalidInput):
        bindings.check_params(_caller(), {}, {"user_id": "alice", name: "bob"})


def test_registry_keys_fold_what_upstreams_fold() -> None:
    from bastion.gateway.identifiers import registry_key

    assert registry_key("WVW123", IdForm.STRING) == registry_key("wvw123", IdForm.STRING)
    assert registry_key("\uff37VW", IdForm.AUTO) == registry_key("wvw", IdForm.AUTO)
    assert registry_key(LOWER.replace("-", ""), IdForm.AUTO) == LOWER
    assert registry_key("42", IdForm.INTEGER) == "42"


def test_the_cache_of_canonical_forms_is_bounded_and_changes_no_answer() -> None:
    assert canonical.cache_info().maxsize == 4096
    canonical.cache_clear()
    for _ in range(2):
        assert canonical("007", IdForm.AUTO) == "7"
        assert canonical("007", IdForm.STRING) == "007"
        assert canonical("0_1", IdForm.AUTO) is None
    assert canonical.cache_info().hits == 3
