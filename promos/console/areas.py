"""The console's areas, in the order of its navigation: one line per area of pages."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Area:
    title: str
    path: str
    description: str
    # Neither shown to sales nor served to them (403), as the API's admin-only routes.
    admin_only: bool = False


AREAS: tuple[Area, ...] = (
    Area("Promo codes", "/admin/promocodes", "Generate codes, find them, follow their use."),
    Area("Specials", "/admin/specials", "Products on offer: a special price or a discount."),
    Area(
        "Upgrade programs",
        "/admin/upgrade-programs",
        "Discounts on moving from one product to another.",
    ),
    Area(
        "Code pools",
        "/admin/pools",
        "Batches of unique codes: their stock, uploads, issues per day, exports.",
    ),
    Area("Brands", "/admin/brands", "The discount generator's brands, their stock and users."),
    Area("Offers", "/admin/games", "Games, their offers, and why a player gets them or not."),
    Area(
        "Referrals",
        "/admin/referrals",
        "Referral programs and their funnel, users' statements, e-mail invitations.",
    ),
    Area(
        "Users", "/admin/users", "People who sign in to the console and the API.", admin_only=True
    ),
    Area(
        "API keys",
        "/admin/api-keys",
        "Credentials of the services that call the API.",
        admin_only=True,
    ),
    Area(
        "Webhooks",
        "/admin/webhooks",
        "Subscriptions to events, and the log of every delivery and billing callback.",
        admin_only=True,
    ),
    Area(
        "Audit log",
        "/admin/audit",
        "Every change made through the API, the console and the command line.",
        admin_only=True,
    ),
)


def areas_for(*, is_admin: bool) -> tuple[Area, ...]:
    """The areas a person with this role may open."""
    return tuple(area for area in AREAS if is_admin or not area.admin_only)
