"""The one redaction module: known values in every encoding, secret shapes, and what must stay readable."""

from __future__ import annotations

import base64
import json
import math
import os
from urllib.parse import quote, quote_plus

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from osiris_action.redact import MASK, Redactor, is_secret_key, patterns_enabled

# Every character that breaks a hand-built DSN, a query string or an escaper, plus a non-ASCII one.
CANARY = "p@ss:w/rd%#?&=+ ü"

# How a value gets printed, written here independently of the module's own list so that a form the
# module forgets shows up as a failure.
ENCODINGS = {
    "raw": lambda s: s,
    "quote": lambda s: quote(s, safe=""),
    "quote-default": quote,
    "quote_plus": quote_plus,
    "json": lambda s: json.dumps(s)[1:-1],
    "json-unicode": lambda s: json.dumps(s, ensure_ascii=False)[1:-1],
    "json-in-json": lambda s: json.dumps(json.dumps(s)[1:-1])[1:-1],
    "repr": lambda s: repr(s)[1:-1],
    "unicode_escape": lambda s: s.encode("unicode_escape").decode("ascii"),
    "bytes-repr": lambda s: repr(s.encode())[2:-1],
    "base64": lambda s: base64.b64encode(s.encode()).decode(),
    "base64-nopad": lambda s: base64.b64encode(s.encode()).decode().rstrip("="),
    "base64url": lambda s: base64.urlsafe_b64encode(s.encode()).decode(),
    "base64url-nopad": lambda s: base64.urlsafe_b64encode(s.encode()).decode().rstrip("="),
}


def patterns(text: str) -> str:
    """The pattern layer alone: no known values."""
    return Redactor(enabled=True).redact(text)


# --- known values --------------------------------------------------------------------------------------
@pytest.mark.parametrize("enabled", [True, False], ids=["patterns-on", "patterns-off"])
@pytest.mark.parametrize("encoding", sorted(ENCODINGS))
def test_canary_is_masked_in_every_encoding(encoding, enabled):
    form = ENCODINGS[encoding](CANARY)
    assert Redactor([CANARY], enabled=enabled).redact(f"before {form} after") == f"before {MASK} after"


@pytest.mark.parametrize("user", ["", "a", "ab", "abc", "svc_user"])
def test_canary_inside_basic_auth_reveals_at_most_two_of_its_bytes(user):
    credential = base64.b64encode(f"{user}:{CANARY}".encode()).decode()
    out = Redactor([CANARY], enabled=False).redact(f"Authorization: Basic {credential}")
    visible = out.removeprefix("Authorization: Basic ")
    assert visible.endswith(MASK)
    visible = visible.removesuffix(MASK)
    # Only the base64 groups shared with "user:" stay; they decode to "user:" and at most two bytes more.
    assert len(visible) == 4 * math.ceil((len(user) + 1) / 3)
    assert base64.b64decode(visible).startswith(f"{user}:".encode())


def test_canary_in_a_dsn_and_in_base64_of_a_longer_document():
    r = Redactor([CANARY], enabled=False)
    dsn = f"postgresql://app:{quote(CANARY, safe='')}@db.example.com:5432/app"
    assert r.redact(dsn) == f"postgresql://app:{MASK}@db.example.com:5432/app"
    # The value in the middle of encoded data: only whole base64 groups are fixed by it.
    for prefix in ("", "x", "xy"):
        blob = base64.b64encode(f'{{"password": "{prefix}{CANARY}", "host": "db"}}'.encode()).decode()
        out = r.redact(blob)
        assert MASK in out
        assert CANARY.encode() not in base64.b64decode(out.split(MASK)[0] + "==")


def test_longer_and_overlapping_values_are_masked_whole():
    r = Redactor(["hunter2", "hunter2xyz", "abcdef", "cdefgh12"], enabled=False)
    assert r.redact("pw hunter2xyz and hunter2.") == f"pw {MASK} and {MASK}."
    # "abcdef" starts first, "cdefgh12" overlaps it and ends later: neither may leave a tail.
    assert r.redact("[abcdefgh12]") == f"[{MASK}]"


def test_short_and_blank_values_are_not_secrets():
    # Masking every "ab" or "id" would shred row counts, SQL and identifiers.
    r = Redactor(["ab", "id", "xyz", "      ", ""], enabled=False)
    text = "select id, xyz from ab where ab.id = 1"
    assert r.redact(text) == text
    assert r.secrets == frozenset()


def test_values_are_added_later_stripped_and_numeric():
    r = Redactor(enabled=False)
    r.add("late-secret-value\n")
    r.add(123456)  # a YAML password read as a number
    assert r.redact("late-secret-value / 123456") == f"{MASK} / {MASK}"


def test_a_single_string_is_refused_as_the_secrets_argument():
    with pytest.raises(TypeError):
        Redactor("hunter2-password")


def test_repr_does_not_show_the_values():
    assert "hunter2" not in repr(Redactor(["hunter2-password"]))


def test_a_secret_containing_the_marker_cannot_reappear():
    r = Redactor(["ab**"], enabled=False)
    assert "ab**" not in r.redact("abab***c")


# --- E2B_LOG_REDACT ------------------------------------------------------------------------------------
@pytest.mark.parametrize("value", ["0", "false", "OFF", " no "])
def test_explicit_off_words_turn_the_pattern_layer_off(value):
    assert patterns_enabled({"E2B_LOG_REDACT": value}) is False


@pytest.mark.parametrize("value", [None, "", "1", "true", "on", "yes", "of", "disabled"])
def test_anything_else_leaves_the_pattern_layer_on(value):
    assert patterns_enabled({} if value is None else {"E2B_LOG_REDACT": value}) is True


def test_switch_off_still_masks_known_values(monkeypatch):
    monkeypatch.setenv("E2B_LOG_REDACT", "0")
    r = Redactor([CANARY])
    assert r.enabled is False
    out = r.redact(f"mysql://u:{quote(CANARY, safe='')}@h/db password=unknown-one {CANARY}")
    assert out == f"mysql://u:{MASK}@h/db password=unknown-one {MASK}"
    monkeypatch.delenv("E2B_LOG_REDACT")
    assert Redactor().enabled is True


# --- patterns --------------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "scheme",
    ["postgresql", "postgres", "postgresql+psycopg", "mysql", "mysql+pymysql", "mariadb", "redis", "amqps"],
)
def test_dsn_password_is_masked_for_every_scheme(scheme):
    text = f"connecting to {scheme}://app:S3cr3t-pw@db.example.com:5432/app?sslmode=require"
    assert patterns(text) == f"connecting to {scheme}://app:{MASK}@db.example.com:5432/app?sslmode=require"


@pytest.mark.parametrize(
    "password",
    ["p%40ss%3Aw%2Frd%25%23", "p@ss:w/rd", "a%20b", quote_plus(CANARY), "${PG_PASSWORD}x"],
)
def test_dsn_password_with_escaped_or_raw_separators(password):
    assert patterns(f'"postgresql://app:{password}@h/db"') == f'"postgresql://app:{MASK}@h/db"'


def test_dsn_without_password_or_user_is_left_alone_and_empty_user_is_handled():
    assert patterns("redis://:hunter22@cache:6379/0") == f"redis://:{MASK}@cache:6379/0"
    for text in ("mysql://localhost:3306/db", "https://example.com:8443/a/b?x=1", "mysql://app@h/db"):
        assert patterns(text) == text


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("host=db port=5432 password=s3cret dbname=app", "host=db port=5432 password=*** dbname=app"),
        ("host=db password = s3cret user=app", "host=db password = *** user=app"),
        ("host=db password='sec ret\\'x' dbname=app", "host=db password='***' dbname=app"),
        ('host=db password="sec ret" dbname=app', 'host=db password="***" dbname=app'),
        ("Server=db;Uid=app;Pwd=s3cret;Database=x", "Server=db;Uid=app;Pwd=***;Database=x"),
    ],
)
def test_keyword_dsn_passwords(text, expected):
    assert patterns(text) == expected


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("Authorization: Bearer abc.def-ghi", "Authorization: Bearer ***"),
        ("authorization: basic dXNlcjpwYXNz", "authorization: basic ***"),
        ("Authorization: Token 0123456789", "Authorization: Token ***"),
        ("Proxy-Authorization: Basic dXNlcjpwYXNz", "Proxy-Authorization: Basic ***"),
        ("Authorization: rawtokenvalue", "Authorization: ***"),
        ('{"Authorization": "Bearer abc.def-ghi", "x": 1}', '{"Authorization": "Bearer ***", "x": 1}'),
        ("{'authorization': 'Bearer abc'}", "{'authorization': 'Bearer ***'}"),
        ('{\\"Authorization\\": \\"Bearer abc\\"}', '{\\"Authorization\\": \\"Bearer ***\\"}'),
        (
            "curl -H 'X: y' --oauth2-bearer x Bearer abcdefgh1234",
            "curl -H 'X: y' --oauth2-bearer x Bearer ***",
        ),
    ],
)
def test_authorization_values(text, expected):
    assert patterns(text) == expected


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("apikey: sbkey123456", "apikey: ***"),
        ("x-api-key: qwertyuiop", "x-api-key: ***"),
        ("X-Supabase-Apikey: qwertyuiop", "X-Supabase-Apikey: ***"),
        ("GET /v1/x?api_key=abcd1234&page=2", "GET /v1/x?api_key=***&page=2"),
        ("GET /v1/x?page=2&apikey=abcd1234", "GET /v1/x?page=2&apikey=***"),
        ("GET /maps?key=AIzaSyExample&q=x", "GET /maps?key=***&q=x"),
        ("MYSQL_PASSWORD=hunter22 E2B_API_KEY=k", "MYSQL_PASSWORD=*** E2B_API_KEY=***"),
        ('{"password": "hunter22", "user": "bob"}', '{"password": "***", "user": "bob"}'),
        ('{"service_role_key": "x", "anon_key": "y"}', '{"service_role_key": "***", "anon_key": "***"}'),
        ('{"key": "plain-value", "keys": ["a"]}', '{"key": "***", "keys": ["a"]}'),
        ('{"client_secret": "a\\"b", "n": 1}', '{"client_secret": "***", "n": 1}'),
        ("access_token: abc refresh_token: def", "access_token: *** refresh_token: ***"),
        ('{"pg_dsn": "postgresql://u:p@h/db"}', '{"pg_dsn": "***"}'),
    ],
)
def test_secret_keys_headers_and_query_parameters(text, expected):
    assert patterns(text) == expected


def test_json_stays_parseable():
    text = json.dumps({"password": 123456, "token": None, "secret": True, "rows": 3, "api_key": "k1"})
    assert json.loads(patterns(text)) == {
        "password": MASK,
        "token": None,
        "secret": True,
        "rows": 3,
        "api_key": MASK,
    }


JWT = "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.eyJyb2xlIjoic2VydmljZV9yb2xlIn0.c2lnbmF0dXJlLXBhcnQ_-x"


@pytest.mark.parametrize(
    "token",
    [
        JWT,
        "eyJhbGciOiJub25lIn0.eyJzdWIiOiIxIn0.",
        "sb_secret_N7UND0UgjKTVK-Uodkm0Hg_xSvEMPvz",
        "sb_publishable_abcDEF123_xyz",
        "e2b_0123456789abcdef0123456789abcdef01234567",
        "ghp_" + "A1b2C3d4E5" * 4,
        "gho_" + "A1b2C3d4E5" * 4,
        "ghs_" + "A1b2C3d4E5" * 4,
        "ghu_" + "A1b2C3d4E5" * 4,
        "github_pat_11ABCDEFG0" + "a1B2_c3D4e" * 6,
    ],
)
def test_self_identifying_tokens(token):
    assert patterns(f"using {token} now") == f"using {MASK} now"
    assert patterns(f'"{token}"') == f'"{MASK}"'


def test_references_stay_readable():
    text = (
        'password: ${MYSQL_PASSWORD} "key": "${SUPABASE_SERVICE_ROLE_KEY}" connection: "@mysql.db_movies" '
        "token=@supabase.main url=postgresql://u:${PG_PASSWORD}@h/db"
    )
    assert patterns(text) == text


@pytest.mark.parametrize(
    "text",
    [
        "author: Jane Doe",
        "primary_key: id",
        "upsert_keys: [id, title]",
        "keys: [a, b]",
        "monkey=5, donkey: 3",
        "SELECT id, key, token_count, author FROM movies WHERE year > 2000 ORDER BY key",
        "rows_in=1000 rows_out=998 duration_ms=12.5 max_tokens=5 password_hash=abc",
        "2025-01-01T00:00:00Z step_complete extract-movies sha256:0123456789abcdef",
        "Basic usage: the bearer of this token keeps it secret.",
        "Unexpected token: } at line 3",
        "gh-pages tokenizer secretary passwords e2b sandbox sb_secret_",
        "https://example.com/search?page=2&q=monkey",
        "password:\n  from: ${MYSQL_PASSWORD}",
        "",
    ],
)
def test_ordinary_text_is_not_redacted(text):
    assert patterns(text) == text


def test_non_ascii_text_keeps_positions():
    # "İ" is the one character whose lower case is longer: the masks must still land in the right place.
    assert patterns("İİ password=s3cret İ") == f"İİ password={MASK} İ"


# --- structures, bytes, files ------------------------------------------------------------------------
def test_redact_obj_on_nested_structures():
    r = Redactor(["hunter22-known"], enabled=True)
    obj = {
        "connections": {
            "mysql": {"db": {"host": "h", "port": 3306, "user": "u", "password": "not-known-but-named"}}
        },
        "steps": [
            {
                "id": "write",
                "config": {
                    "key": "${SUPABASE_SERVICE_ROLE_KEY}",
                    "service_role_key": "literal",
                    "connection": "@supabase.main",
                    "password": "@mysql.db",
                    "primary_key": ["id"],
                    "upsert_keys": ["id"],
                    "keys": ["a", "b"],
                    "author": "bob",
                    "monkey": "banana",
                    "headers": {"Authorization": "Bearer abc", "X-Api-Key": "k"},
                    "pg_dsn": "postgresql://u:pw@h/db",
                    "mysql_password": 123456,
                    "sql_dsn": None,
                    "tokens": ["t1"],
                    "api_keys": ("a", "b"),
                    "note": "the value hunter22-known leaked into a message",
                    "url": "mysql://u:pw123@h/db",
                    "enabled": True,
                },
            }
        ],
        "hunter22-known": 1,
    }
    assert r.redact_obj(obj) == {
        "connections": {"mysql": {"db": {"host": "h", "port": 3306, "user": "u", "password": MASK}}},
        "steps": [
            {
                "id": "write",
                "config": {
                    "key": "${SUPABASE_SERVICE_ROLE_KEY}",
                    "service_role_key": MASK,
                    "connection": "@supabase.main",
                    "password": "@mysql.db",
                    "primary_key": ["id"],
                    "upsert_keys": ["id"],
                    "keys": ["a", "b"],
                    "author": "bob",
                    "monkey": "banana",
                    "headers": {"Authorization": MASK, "X-Api-Key": MASK},
                    "pg_dsn": MASK,
                    "mysql_password": MASK,
                    "sql_dsn": None,
                    "tokens": ["t1"],
                    "api_keys": ("a", "b"),
                    "note": f"the value {MASK} leaked into a message",
                    "url": f"mysql://u:{MASK}@h/db",
                    "enabled": True,
                },
            }
        ],
        MASK: 1,
    }


def test_redact_obj_masks_named_values_even_with_the_pattern_layer_off():
    r = Redactor(enabled=False)
    assert r.redact_obj({"token": "abc", "items": [{"secret": "x"}], "n": 2.5}) == {
        "token": MASK,
        "items": [{"secret": MASK}],
        "n": 2.5,
    }


@pytest.mark.parametrize(
    "name",
    ["password", "PASSWORD", "pwd", "api-key", "x-api-key", "apikey", "key", "service_role_key", "anon_key",
     "dsn", "pg_dsn", "sql_dsn", "connection_string", "Authorization", "access_token", "refresh_token",
     "client_secret", "private_key", "mysql_password", "github_token", "supabase_service_role_key"],
)  # fmt: skip
def test_secret_key_names(name):
    assert is_secret_key(name)


@pytest.mark.parametrize(
    "name",
    ["author", "primary_key", "upsert_keys", "keys", "monkey", "sort_key", "max_tokens", "token_count",
     "password_hash", "secrets", "connection", "host", "user", "url", "table"],
)  # fmt: skip
def test_ordinary_key_names(name):
    assert not is_secret_key(name)


def test_redact_bytes_keeps_bytes_that_are_not_utf8():
    r = Redactor([CANARY], enabled=True)
    data = b"\xff\xfe password=abc \x80 " + CANARY.encode() + b"\n"
    assert r.redact_bytes(data) == b"\xff\xfe password=*** \x80 ***\n"
    clean = b"\xff nothing here \x80"
    assert r.redact_bytes(clean) is clean


def test_redact_file_rewrites_only_when_something_changed(tmp_path):
    r = Redactor([CANARY], enabled=True)
    dirty, clean = tmp_path / "log.txt", tmp_path / "data.csv"
    dirty.write_text(f"dsn uses {CANARY}\n", encoding="utf-8")
    clean.write_text("id,title\n1,Alien\n", encoding="utf-8")
    os.utime(clean, ns=(1_000_000_000, 1_000_000_000))
    assert r.redact_file(dirty) is True
    assert dirty.read_text(encoding="utf-8") == f"dsn uses {MASK}\n"
    assert r.redact_file(clean) is False
    assert clean.stat().st_mtime_ns == 1_000_000_000


def test_large_input_is_redacted_completely():
    # About 10 MB of log lines with a known value, a DSN and a token sprinkled through it.
    secret = "Kx9-known-Secret!"
    line = "2025-01-01T00:00:00Z INFO step extract-movies rows=1000 author=bob primary_key=id\n" * 3 + "\n"
    chunks = []
    for i in range(41_000):
        chunks.append(line)
        if i % 410 == 0:
            chunks.append(f"{secret} mysql://app:pw{i}@db/app {JWT}\n")
    text = "".join(chunks)
    assert len(text) > 10_000_000
    out = Redactor([secret], enabled=True).redact(text)
    assert secret not in out
    assert "@db/app" in out
    assert ":pw" not in out
    assert "eyJ" not in out
    assert out.count(MASK) == 3 * 100
    assert out.count(line) == 41_000


# --- properties -------------------------------------------------------------------------------------------
secrets = st.text(st.characters(blacklist_categories=("Cs", "Cc")), min_size=6, max_size=40)
noise = st.text(max_size=60)


@settings(max_examples=200, deadline=None)
@given(
    secret=secrets,
    before=noise,
    after=noise,
    encoding=st.sampled_from(sorted(ENCODINGS)),
    enabled=st.booleans(),
)
def test_a_known_secret_never_survives_in_any_encoding(secret, before, after, encoding, enabled):
    form = ENCODINGS[encoding](secret)
    out = Redactor([secret], enabled=enabled).redact(before + form + after)
    assert secret not in out
    assert form not in out


@settings(max_examples=100, deadline=None)
@given(secret=secrets, user=st.text(st.characters(min_codepoint=33, max_codepoint=126), max_size=12))
def test_a_known_secret_never_survives_in_basic_auth(secret, user):
    credential = base64.b64encode(f"{user}:{secret}".encode()).decode()
    out = Redactor([secret], enabled=False).redact(f"Authorization: Basic {credential}")
    assert credential not in out
    visible = out.removeprefix("Authorization: Basic ").split(MASK)[0]
    assert secret.encode() not in base64.b64decode(visible + "=" * (-len(visible) % 4))
