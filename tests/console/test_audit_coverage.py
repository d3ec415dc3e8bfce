"""Every console form that changes something is audited, or is declared authentication.

The API's own list is tests/test_audit.py; the console's forms are listed here, each with the
action its audit row has (checked by the test named) or the reason it has none.
"""

from __future__ import annotations

from promos.app import create_app
from promos.settings import Settings
from tests._routes import app_routes

AUDITED = {
    ("POST", "/admin/users/new"): "user.create (test_people.py)",
    ("POST", "/admin/users/{user_id}/disable"): "user.disable (test_people.py)",
    ("POST", "/admin/api-keys/new"): "api_key.create (test_people.py)",
    ("POST", "/admin/api-keys/{key_id}/revoke"): "api_key.revoke (test_people.py)",
    ("POST", "/admin/api-keys/{key_id}/rotate"): "api_key.rotate (test_people.py)",
    ("POST", "/admin/promocodes/new"): "promocode_generation.create (test_promocodes.py)",
    ("POST", "/admin/promocodes/codes/{code}/edit"): "promocode.update (test_promocodes.py)",
    ("POST", "/admin/promocodes/codes/{code}/delete"): "promocode.delete (test_promocodes.py)",
    (
        "POST",
        "/admin/promocodes/redemptions/{redemption_id}/rollback",
    ): "promocode_redemption.rollback (test_promocodes.py)",
    ("POST", "/admin/specials/new"): "special.create (test_specials.py)",
    ("POST", "/admin/specials/{row_id}"): "special.update (test_specials.py)",
    ("POST", "/admin/specials/{row_id}/delete"): "special.delete (test_specials.py)",
    ("POST", "/admin/upgrade-programs/new"): "upgrade_program.create (test_specials.py)",
    ("POST", "/admin/upgrade-programs/{row_id}"): "upgrade_program.update (test_specials.py)",
    (
        "POST",
        "/admin/upgrade-programs/{row_id}/delete",
    ): "upgrade_program.delete (test_specials.py)",
    ("POST", "/admin/pools/new"): "batch.create (test_pools.py)",
    ("POST", "/admin/pools/{batch_id}/upload"): "batch.codes_add (test_pools.py)",
    ("POST", "/admin/pools/{batch_id}/codes"): "batch.codes_add (test_pools.py)",
    ("POST", "/admin/pools/{batch_id}/expire"): "batch.expire (test_pools.py)",
    ("POST", "/admin/pools/{batch_id}/hold-settings"): "batch.hold_settings (test_pools.py)",
    ("POST", "/admin/brands/users/new"): "brand_user.create (test_brands.py)",
    ("POST", "/admin/brands/users/{user_id}/delete"): "brand_user.delete (test_brands.py)",
    ("POST", "/admin/games/new"): "game.create (test_offers.py)",
    ("POST", "/admin/games/{game_id}/edit"): "game.update (test_offers.py)",
    ("POST", "/admin/games/{game_id}/offers/new"): "offer.create (test_offers.py)",
    ("POST", "/admin/games/{game_id}/offers/{offer_id}"): "offer.update (test_offers.py)",
    ("POST", "/admin/games/{game_id}/offers/{offer_id}/enable"): "offer.enable (test_offers.py)",
    ("POST", "/admin/games/{game_id}/offers/{offer_id}/disable"): "offer.disable (test_offers.py)",
    ("POST", "/admin/referrals/new"): "referral_program.create (test_referrals.py)",
    (
        "POST",
        "/admin/referrals/programs/{program_id}/edit",
    ): "referral_program.update (test_referrals.py)",
    (
        "POST",
        "/admin/referrals/programs/{program_id}/delete",
    ): "referral_program.delete (test_referrals.py)",
    ("POST", "/admin/webhooks/new"): "webhook.create (test_webhooks.py)",
    ("POST", "/admin/webhooks/{subscription_id}/events"): "webhook.update (test_webhooks.py)",
    ("POST", "/admin/webhooks/{subscription_id}/pause"): "webhook.update (test_webhooks.py)",
    ("POST", "/admin/webhooks/{subscription_id}/resume"): "webhook.update (test_webhooks.py)",
    ("POST", "/admin/webhooks/{subscription_id}/delete"): "webhook.delete (test_webhooks.py)",
    ("POST", "/admin/webhooks/{subscription_id}/test"): "webhook.test (test_webhooks.py)",
    (
        "POST",
        "/admin/webhooks/deliveries/replay",
    ): "webhook_delivery.replay (test_webhooks.py)",
    (
        "POST",
        "/admin/webhooks/deliveries/{delivery_id}/replay",
    ): "webhook_delivery.replay (test_webhooks.py)",
    ("POST", "/admin/account/two-factor"): "user.two_factor_start (test_account.py)",
    ("POST", "/admin/account/two-factor/confirm"): "user.two_factor_enable (test_account.py)",
    ("POST", "/admin/account/two-factor/disable"): "user.two_factor_disable (test_account.py)",
    ("POST", "/admin/users/{user_id}/two-factor/reset"): "user.two_factor_reset (test_account.py)",
    ("POST", "/admin/users/two-factor-policy"): "auth_settings.update (test_account.py)",
}
AUTHENTICATION = {
    ("POST", "/admin/sign-in"): "starts a session, as the API's sign-in makes a token",
    ("POST", "/admin/sign-in/code"): "the second step of sign-in: starts the session",
    ("POST", "/admin/sign-out"): "ends the session",
}


def _console_writes() -> set[tuple[str, str]]:
    app = create_app(Settings(database_url="sqlite+aiosqlite:///:memory:"))
    return {
        (method, path)
        for method, path in app_routes(app)
        if path.startswith("/admin") and method not in {"GET", "HEAD", "OPTIONS"}
    }


def test_every_console_form_is_audited_or_authentication():
    missing = sorted(_console_writes() - AUDITED.keys() - AUTHENTICATION.keys())

    assert not missing, (
        "these console routes change something: make the change through the domain's "
        "changes.py with actor=person.principal, test its audit row, and list it in AUDITED: "
        f"{missing}"
    )


def test_every_listed_form_is_served():
    assert sorted((AUDITED.keys() | AUTHENTICATION.keys()) - _console_writes()) == []
