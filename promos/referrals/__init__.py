"""Referral programs: referred sign-ups, payments reaching a target, the credits ledger."""
