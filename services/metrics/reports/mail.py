"""A kept report e-mailed to the configured list: a short summary, the PDF and the HTML."""

from datetime import date
from email.message import EmailMessage
from email.utils import formatdate, make_msgid

import aiosmtplib

from services.metrics.reports.labels import translator
from services.metrics.reports.settings import ReportSettings


def message(
    settings: ReportSettings,
    *,
    kind: str,
    start: date,
    end: date,
    html: str,
    pdf: bytes,
    summary: str,
) -> EmailMessage:
    word = translator(settings.language)
    stem = f"careloop-{kind}-{start.isoformat()}"
    msg = EmailMessage()
    msg["Subject"] = f"{word(kind)} {start.isoformat()} – {end.isoformat()}"
    msg["From"] = settings.mail_from
    msg["To"] = ", ".join(settings.recipient_list)
    msg["Date"] = formatdate(localtime=False)
    msg["Message-ID"] = make_msgid(idstring=stem, domain="careloop.reports")
    msg.set_content(summary)
    msg.add_attachment(pdf, maintype="application", subtype="pdf", filename=f"{stem}.pdf")
    msg.add_attachment(html, subtype="html", filename=f"{stem}.html")
    return msg


async def send(settings: ReportSettings, msg: EmailMessage) -> None:
    await aiosmtplib.send(
        msg,
        hostname=settings.smtp_host,
        port=settings.smtp_port,
        username=settings.smtp_username,
        password=settings.smtp_password.get_secret_value() if settings.smtp_password else None,
        start_tls=settings.smtp_starttls,
        timeout=settings.smtp_timeout_seconds,
    )


SMTPException = aiosmtplib.SMTPException
