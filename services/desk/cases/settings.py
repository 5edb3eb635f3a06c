"""The complaint cases' settings, read from CARELOOP_DESK_CASE_* beside desk's own."""

from decimal import Decimal

from pydantic_settings import BaseSettings, SettingsConfigDict

from shared.settings import own


class CaseSettings(BaseSettings):
    """Approval thresholds, the acknowledgement deadline and the call-back delay; the defaults
    are a small training company's (amounts in `currency`)."""

    model_config = SettingsConfigDict(extra="ignore")

    currency: str = own(
        "desk",
        "case_currency",
        "CNY",
        "The currency of refunds, coupons and every threshold below; a remedy in another "
        "currency is refused (422).",
    )
    refund_approval_above: Decimal = own(
        "desk", "case_refund_approval_above", Decimal(200), "A larger refund needs a supervisor."
    )
    refund_second_approval_above: Decimal = own(
        "desk",
        "case_refund_second_approval_above",
        Decimal(1000),
        "A larger refund needs a second, different approver.",
    )
    coupon_approval_above: Decimal = own(
        "desk", "case_coupon_approval_above", Decimal(100), "A coupon worth more needs approval."
    )
    points_approval_above: int = own(
        "desk", "case_points_approval_above", 1000, "More loyalty points need approval."
    )
    extension_approval_above_days: int = own(
        "desk", "case_extension_approval_above_days", 14, "A longer extension needs approval."
    )
    lessons_approval_above: int = own(
        "desk",
        "case_lessons_approval_above",
        2,
        "More supplementary lessons need approval.",
    )
    replacement_needs_approval: bool = own(
        "desk",
        "case_replacement_needs_approval",
        True,
        "A replacement service (another teacher, class or format) needs approval.",
    )
    ack_overdue_hours: float = own(
        "desk",
        "case_ack_overdue_hours",
        48,
        "A remedy the acting system has not acknowledged this long after its request is "
        "overdue (API and careloop_remedies_overdue).",
    )
    callback_days: float = own(
        "desk",
        "case_callback_days",
        3,
        "A call-back task falls due this many days after a case closes (004 §三.3).",
    )
    repeat_window_days: float = own(
        "desk",
        "case_repeat_window_days",
        180,
        "Complaints within this many days by the same learner, or about the same teacher or "
        "course, flag a case as a repeat.",
    )
    clock_seconds: float = own(
        "desk",
        "case_clock_seconds",
        30,
        "How often desk raises due call-backs and counts overdue remedies.",
    )
