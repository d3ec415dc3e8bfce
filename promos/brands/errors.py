"""What can go wrong with brands and their users."""

from __future__ import annotations

from promos.errors import Conflict, InvalidInput, NotFound, Unauthenticated


class BrandUserUnknown(Unauthenticated):
    """A wrong user id or secret: one answer for both, so that ids cannot be probed."""

    code = "brand_user_unknown"


class BrandUserExists(Conflict):
    code = "brand_user_exists"


class BrandUserNotFound(NotFound):
    code = "brand_user_not_found"


class BrandHasNoCodes(NotFound):
    code = "brand_has_no_codes"


class InvalidBrandUser(InvalidInput):
    code = "invalid_brand_user"
