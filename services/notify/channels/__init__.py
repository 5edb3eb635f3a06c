"""notify's channels: one sender each (compose, send, classify errors)."""


class ChannelError(Exception):
    """A delivery on an HTTP channel (WeChat, Weibo, SMS) did not go. `permanent`: retrying
    cannot help (give the delivery up now); else retry later with backoff. A learner who
    cannot be reached on the channel at all raises `services.notify.domain.Undeliverable`."""

    def __init__(self, reason: str, permanent: bool) -> None:
        super().__init__(reason)
        self.reason = reason
        self.permanent = permanent
