"""``promos users``, ``api-keys``, ``brand-users`` and ``webhooks``: list, show, disable or
revoke, reset a password; ``--json`` for scripts; each change in the audit log as ``cli``."""

from __future__ import annotations

import json
import os
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import select

from promos.audit.tables import audit_log
from promos.auth import service as auth_service
from promos.auth.errors import InvalidCredentials
from promos.brands import service as brands
from promos.clock import utc_now
from promos.events import service as events
from tests.test_cli import failed_cleanly, promos, query

NOW = datetime(2026, 3, 1, 12, tzinfo=UTC)
PASSWORD = "a long password"


def make_user(database_url: str, username: str = "sally") -> auth_service.User:
    return query(
        database_url,
        lambda conn: auth_service.create_user(
            conn, username=username, password=PASSWORD, role="sales", now=NOW
        ),
    )


def make_key(database_url: str, name: str = "shop") -> auth_service.NewApiKey:
    return query(
        database_url,
        lambda conn: auth_service.create_api_key(conn, name=name, role="sales", now=NOW),
    )


def audit_rows(database_url: str) -> list[dict[str, object]]:
    async def read(conn):
        return [row._asdict() for row in await conn.execute(select(audit_log))]

    rows: list[dict[str, object]] = query(database_url, read)
    return rows


def json_lines(output: str) -> list[dict[str, object]]:
    return [json.loads(line) for line in output.splitlines()]


# --- users -------------------------------------------------------------------------------------


def test_users_list_shows_every_user_in_a_table(database_url):
    make_user(database_url, "sally")
    make_user(database_url, "tom")

    result = promos(database_url, "users", "list")

    assert result.exit_code == 0, result.output
    header, *lines = result.stdout.splitlines()
    assert header.split() == ["id", "username", "role", "disabled", "two_factor", "created_at"]
    assert [line.split()[1] for line in lines] == ["sally", "tom"]


def test_users_list_json_prints_one_user_a_line_as_the_api_shows_them(database_url):
    sally = make_user(database_url, "sally")
    make_user(database_url, "tom")

    result = promos(database_url, "users", "list", "--json")

    assert result.exit_code == 0, result.output
    first, second = json_lines(result.stdout)
    assert first == {
        "id": sally.id,
        "username": "sally",
        "role": "sales",
        "created_at": NOW.isoformat().replace("+00:00", "Z"),
        "disabled": False,
        "two_factor": False,
    }
    assert second["username"] == "tom"


def test_users_show_one_user_by_name(database_url):
    make_user(database_url, "sally")

    result = promos(database_url, "users", "show", "sally", "--json")

    assert result.exit_code == 0, result.output
    assert json_lines(result.stdout)[0]["username"] == "sally"


def test_users_show_an_unknown_user_fails_cleanly(database_url):
    result = promos(database_url, "users", "show", "nobody")

    assert failed_cleanly(result), (result.exit_code, result.output, result.exception)
    assert "'nobody' does not exist" in result.output


def test_users_disable_stops_the_users_password(database_url):
    make_user(database_url, "sally")

    result = promos(database_url, "users", "disable", "sally")

    assert result.exit_code == 0, result.output
    assert query(database_url, lambda conn: auth_service.get_user_by_name(conn, "sally")).disabled


def test_users_reset_password_sets_the_new_password(database_url):
    make_user(database_url, "sally")

    result = promos(
        database_url, "users", "reset-password", "sally", stdin="the new password\n" * 2
    )

    assert result.exit_code == 0, result.output
    user = query(
        database_url,
        lambda conn: auth_service.verify_password(conn, "sally", "the new password"),
    )
    assert user.username == "sally"


def test_users_reset_password_revokes_the_users_tokens(database_url):
    make_user(database_url, "sally")
    issued = query(
        database_url,
        lambda conn: auth_service.sign_in(
            conn, username="sally", password=PASSWORD, ttl=timedelta(hours=1), now=utc_now()
        ),
    )

    result = promos(database_url, "users", "reset-password", "sally", "--password", "x" * 12)

    assert result.exit_code == 0, result.output
    assert "1 sign-in token(s) revoked" in result.output
    with pytest.raises(InvalidCredentials):
        query(
            database_url,
            lambda conn: auth_service.principal_for_token(conn, issued.token, now=utc_now()),
        )


def test_users_reset_password_refuses_a_short_password_and_keeps_the_old(database_url):
    make_user(database_url, "sally")

    result = promos(database_url, "users", "reset-password", "sally", "--password", "short")

    assert failed_cleanly(result), (result.exit_code, result.output, result.exception)
    assert f"at least {auth_service.MIN_PASSWORD_LENGTH} characters" in result.output
    assert query(database_url, lambda conn: auth_service.verify_password(conn, "sally", PASSWORD))


def test_users_reset_password_of_an_unknown_user_fails_cleanly(database_url):
    result = promos(database_url, "users", "reset-password", "nobody", "--password", "x" * 12)

    assert failed_cleanly(result), (result.exit_code, result.output, result.exception)


def test_users_reset_password_never_prints_the_password(database_url):
    make_user(database_url, "sally")

    result = promos(database_url, "users", "reset-password", "sally", "--password", "x" * 12)

    assert "x" * 12 not in result.output


# --- the audit log names the command line ------------------------------------------------------


def test_a_reset_from_the_command_line_is_audited_as_cli(database_url):
    sally = make_user(database_url, "sally")

    promos(database_url, "users", "reset-password", "sally", "--password", "x" * 12)

    [row] = audit_rows(database_url)
    assert (row["actor_kind"], row["actor_id"], row["actor_role"]) == ("cli", os.getuid(), "admin")
    assert (row["action"], row["target_type"], row["target_id"]) == (
        "user.password_reset",
        "user",
        str(sally.id),
    )
    assert row["after"] == {"username": "sally", "tokens_revoked": 0}
    assert "x" * 12 not in repr(row)


def test_users_create_is_audited_as_the_api_audits_it(database_url):
    promos(database_url, "users", "create", "--username", "x", "--password", PASSWORD)

    [row] = audit_rows(database_url)
    assert (row["actor_kind"], row["action"]) == ("cli", "user.create")
    assert isinstance(row["after"], dict)
    assert row["after"]["username"] == "x"


def test_a_refused_change_from_the_command_line_leaves_no_audit_row(database_url):
    promos(database_url, "users", "disable", "nobody")

    assert audit_rows(database_url) == []


def test_the_audit_log_lists_by_the_cli_actor(database_url):
    promos(database_url, "api-keys", "create", "--name", "svc")

    [row] = audit_rows(database_url)
    assert (row["actor_kind"], row["action"]) == ("cli", "api_key.create")


# --- api keys ----------------------------------------------------------------------------------


def test_api_keys_list_shows_prefixes_and_never_a_secret(database_url):
    new = make_key(database_url, "shop")

    result = promos(database_url, "api-keys", "list")

    assert result.exit_code == 0, result.output
    assert new.key.prefix in result.stdout
    assert new.secret not in result.stdout


def test_api_keys_create_json_prints_the_key_with_its_secret(database_url):
    result = promos(database_url, "api-keys", "create", "--name", "svc", "--json")

    assert result.exit_code == 0, result.output
    [made] = json_lines(result.stdout)
    assert (made["name"], made["role"], made["revoked"]) == ("svc", "sales", False)
    principal = query(
        database_url,
        lambda conn: auth_service.principal_for_api_key(conn, str(made["key"]), now=NOW),
    )
    assert principal.id == made["id"]


def test_api_keys_revoke_stops_the_key(database_url):
    new = make_key(database_url)

    result = promos(database_url, "api-keys", "revoke", str(new.key.id), "--json")

    assert result.exit_code == 0, result.output
    assert json_lines(result.stdout)[0]["revoked"] is True
    with pytest.raises(InvalidCredentials):
        query(
            database_url, lambda conn: auth_service.principal_for_api_key(conn, new.secret, now=NOW)
        )


def test_api_keys_show_an_unknown_key_fails_cleanly(database_url):
    result = promos(database_url, "api-keys", "show", "4242")

    assert failed_cleanly(result), (result.exit_code, result.output, result.exception)


# --- brand users -------------------------------------------------------------------------------


def test_brand_users_list_and_delete(database_url):
    for user_id in ("u-2", "u-1"):
        promos(database_url, "brand-users", "create", "--user-id", user_id)

    listed = promos(database_url, "brand-users", "list", "--json")
    deleted = promos(database_url, "brand-users", "delete", "u-1")

    assert [u["user_id"] for u in json_lines(listed.stdout)] == ["u-1", "u-2"]
    assert deleted.exit_code == 0, deleted.output
    assert [u.user_id for u in query(database_url, brands.list_brand_users)] == ["u-2"]


def test_brand_users_show_never_shows_the_secret(database_url):
    made = promos(database_url, "brand-users", "create", "--user-id", "u-1")

    result = promos(database_url, "brand-users", "show", "u-1")

    assert result.exit_code == 0, result.output
    assert "u-1" in result.stdout
    assert made.stdout.strip() not in result.stdout


# --- webhooks ----------------------------------------------------------------------------------


def make_subscription(database_url: str) -> events.Subscription:
    return query(
        database_url,
        lambda conn: events.create_subscription(
            conn, url="https://example.com/hook", event_types=["*"], secret="s" * 32, now=NOW
        ),
    )


def test_webhooks_list_shows_the_subscriptions_without_secrets(database_url):
    make_subscription(database_url)

    result = promos(database_url, "webhooks", "list", "--json")

    assert result.exit_code == 0, result.output
    [hook] = json_lines(result.stdout)
    assert (hook["url"], hook["events"], hook["active"]) == (
        "https://example.com/hook",
        ["*"],
        True,
    )
    assert "s" * 32 not in result.stdout


def test_webhooks_delete_stops_the_subscription_and_is_audited(database_url):
    hook = make_subscription(database_url)

    result = promos(database_url, "webhooks", "delete", str(hook.id))

    assert result.exit_code == 0, result.output
    assert not query(database_url, lambda conn: events.get_subscription(conn, hook.id)).active
    assert [r["action"] for r in audit_rows(database_url)] == ["webhook.delete"]


def test_api_keys_create_with_scopes_makes_a_key_that_holds_those_only(database_url):
    result = promos(
        database_url,
        "api-keys",
        "create",
        "--name",
        "checkout",
        "--scope",
        "promocodes:use",
        "--scope",
        "games:use:galaxy,space",
        "--json",
    )

    assert result.exit_code == 0, result.output
    [made] = json_lines(result.stdout)
    assert made["scopes"] == ["games:use:galaxy,space", "promocodes:use"]
    principal = query(
        database_url,
        lambda conn: auth_service.principal_for_api_key(conn, str(made["key"]), now=NOW),
    )
    assert principal.scopes is not None
    assert principal.scopes.ids("games", "use") == {"galaxy", "space"}
    assert not principal.scopes.holds("promocodes", "read")


def test_api_keys_create_refuses_a_scope_it_does_not_know(database_url):
    result = promos(database_url, "api-keys", "create", "--name", "x", "--scope", "codes:use")

    assert result.exit_code == 2
    assert "unknown scope kind 'codes'" in result.output
    assert audit_rows(database_url) == []


def test_api_keys_rotate_prints_a_new_secret_and_the_old_one_works_for_the_grace(database_url):
    new = make_key(database_url, "shop")

    result = promos(
        database_url, "api-keys", "rotate", str(new.key.id), "--grace-seconds", "3600", "--json"
    )

    assert result.exit_code == 0, result.output
    [rotated] = json_lines(result.stdout)
    assert rotated["key"] != new.secret
    for secret in (new.secret, str(rotated["key"])):
        principal = query(
            database_url,
            lambda conn, s=secret: auth_service.principal_for_api_key(conn, s, now=utc_now()),
        )
        assert principal.id == new.key.id
    [row] = audit_rows(database_url)
    assert (row["action"], row["after"]["grace_seconds"]) == ("api_key.rotate", 3600)


def test_api_keys_create_with_an_expiry_shows_it(database_url):
    result = promos(
        database_url, "api-keys", "create", "--name", "x", "--expires-at", "2099-01-31", "--json"
    )

    assert result.exit_code == 0, result.output
    [made] = json_lines(result.stdout)
    assert made["expires_at"] == "2099-01-31T00:00:00Z"
