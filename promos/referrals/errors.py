"""What can go wrong with referrals; each has its own stable code."""

from __future__ import annotations

from promos.errors import Conflict, InvalidInput, NotFound


class ProgramNotFound(NotFound):
    code = "program_not_found"


class NoProgram(NotFound):
    """A registration named no program, and there is none to default to."""

    code = "no_program"


class ProgramInUse(Conflict):
    code = "program_in_use"


class ReferralUserNotFound(NotFound):
    code = "referral_user_not_found"


class AlreadyReferred(Conflict):
    code = "already_referred"


class SelfReferral(InvalidInput):
    code = "self_referral"


class InvalidEmail(InvalidInput):
    code = "invalid_email"


class EmailTaken(Conflict):
    """The address was verified for another referred user: one user per address."""

    code = "email_taken"


class RefundKeyReused(Conflict):
    """An Idempotency-Key sent again for the same user with another amount."""

    code = "idempotency_key_reused"
