"""The events Promos emits: what a webhook subscription may ask for (or ``*``, all of them)."""

from __future__ import annotations

CODE_ISSUED = "code.issued"
PROMOCODE_REDEEMED = "promocode.redeemed"
PROMOCODE_REDEEM_ROLLED_BACK = "promocode.redeem_rolled_back"
PROMOCODE_REDEMPTION_RETURNED = "promocode.redemption_returned"
PROMOCODE_HELD = "promocode.held"
PROMOCODE_HOLD_RELEASED = "promocode.hold_released"
PROMOCODE_HOLD_EXPIRED = "promocode.hold_expired"
POOL_CODE_HELD = "pool_code.held"
POOL_CODE_HOLD_CONFIRMED = "pool_code.hold_confirmed"
POOL_CODE_HOLD_RELEASED = "pool_code.hold_released"
POOL_CODE_HOLD_EXPIRED = "pool_code.hold_expired"
OFFER_CLAIMED = "offer.claimed"
REFERRAL_SIGNED_UP = "referral.signed_up"
REFERRAL_REWARDED = "referral.rewarded"
REFERRAL_REWARD_PENDING = "referral.reward_pending"
REFERRAL_REWARD_REVERSED = "referral.reward_reversed"

EVENT_TYPES: dict[str, str] = {
    CODE_ISSUED: "a pool code was handed to a customer",
    PROMOCODE_REDEEMED: "a use of a promo code was taken at checkout",
    PROMOCODE_REDEEM_ROLLED_BACK: "a redemption was rolled back: its use is given back",
    PROMOCODE_REDEMPTION_RETURNED: "products of a redemption were returned; with none the code "
    "applies to kept, its use ended as by a rollback",
    PROMOCODE_HELD: "a use of a promo code was held for an order until the hold expires",
    PROMOCODE_HOLD_RELEASED: "a hold was released: its use is given back",
    PROMOCODE_HOLD_EXPIRED: "a lapsed hold was found expired: its use is given back",
    POOL_CODE_HELD: "a pool code was held for an order until the hold expires",
    POOL_CODE_HOLD_CONFIRMED: "a pool code hold was confirmed: its code is issued to the customer",
    POOL_CODE_HOLD_RELEASED: "a pool code hold was released: its code is returned or burnt",
    POOL_CODE_HOLD_EXPIRED: "a lapsed pool code hold was ended: its code is returned or burnt",
    OFFER_CLAIMED: "a player's claim of an offer was counted",
    REFERRAL_SIGNED_UP: "a referred user signed up",
    REFERRAL_REWARDED: "a referrer was granted the program's reward (at its hold's end)",
    REFERRAL_REWARD_PENDING: "a referrer earned a reward the program holds for some days",
    REFERRAL_REWARD_REVERSED: "a refund voided a pending reward or clawed a granted one back",
}
