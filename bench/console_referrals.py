"""The referral pages of the console, for bench/console_pages.py (which seeds their data:
one program of 100,000 referrals, their ledger, 100,000 e-mail invitations).

``pages(dsn)`` lists each page, the first and last page of each listing.
"""

from __future__ import annotations

import asyncpg

from promos.http.pagination import encode_cursor

PAGE_SIZE = 50  # promos.console.paging.PAGE_SIZE
REFERRER = "referrer-1"  # 100 referrals: two pages


async def pages(dsn: str) -> list[tuple[str, str]]:
    """(name, path) of every referral page, found in the seeded database at ``dsn``."""
    conn = await asyncpg.connect(dsn, timeout=10)
    try:
        program = await conn.fetchval("SELECT min(id) FROM referral_programs")
        referred = await conn.fetchval(
            "SELECT referred_hash FROM referrals WHERE referrer_hash = $1 ORDER BY id LIMIT 1",
            REFERRER,
        )
        # The key of the item before the last page of each listing.
        made = await conn.fetchval(
            "SELECT id FROM referrals WHERE referrer_hash = $1 ORDER BY id "
            "OFFSET (SELECT (count(*) - 1) / $2 * $2 - 1 FROM referrals WHERE referrer_hash = $1) "
            "LIMIT 1",
            REFERRER,
            PAGE_SIZE,
        )
        credit = await conn.fetchval(
            "SELECT id FROM referral_credits WHERE user_hash = $1 ORDER BY id "
            "OFFSET (SELECT (count(*) - 1) / $2 * $2 - 1 FROM referral_credits "
            "WHERE user_hash = $1) LIMIT 1",
            REFERRER,
            PAGE_SIZE,
        )
        invitation = await conn.fetchrow(
            "SELECT created_at, email FROM email_indications ORDER BY created_at DESC, email DESC "
            "OFFSET (SELECT (count(*) - 1) / $1 * $1 - 1 FROM email_indications) LIMIT 1",
            PAGE_SIZE,
        )
    finally:
        await conn.close()
    invitations = "/admin/referrals/invitations"
    last_invitations = encode_cursor((invitation["created_at"], invitation["email"]))
    return [
        ("referrals: programs", "/admin/referrals"),
        ("referrals: new program", "/admin/referrals/new"),
        ("referrals: program funnel (100,000 referrals)", f"/admin/referrals/programs/{program}"),
        ("referrals: edit program", f"/admin/referrals/programs/{program}/edit"),
        ("referrals: statement form", "/admin/referrals/users"),
        ("referrals: a referrer's statement", f"/admin/referrals/users?user_hash={REFERRER}"),
        (
            "referrals: a referrer's statement, last page",
            f"/admin/referrals/users?user_hash={REFERRER}&after={encode_cursor((made,))}",
        ),
        ("referrals: a referred user's statement", f"/admin/referrals/users?user_hash={referred}"),
        ("referrals: credits", f"/admin/referrals/credits?user_hash={REFERRER}"),
        (
            "referrals: credits, last page",
            f"/admin/referrals/credits?user_hash={REFERRER}&after={encode_cursor((credit,))}",
        ),
        ("referrals: invitations", invitations),
        ("referrals: invitations, last page", f"{invitations}?after={last_invitations}"),
        ("referrals: invitations of one referrer", f"{invitations}?referrer={REFERRER}"),
        ("referrals: invitations not verified", f"{invitations}?verified=no"),
    ]
