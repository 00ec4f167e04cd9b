"""Sending an alert along its unit's escalation path: a webhook in Slack-compatible JSON
and e-mail over SMTP. Failures are reported to the caller (recorded in the alert's history),
never raised: one dead channel must not stop the others."""

from __future__ import annotations

import smtplib
import ssl
from collections.abc import Callable
from dataclasses import dataclass, field
from email.message import EmailMessage

import httpx

from orchestra.config import EscalationPath, SMTPSettings
from orchestra.org import OrgTree


@dataclass(frozen=True)
class Message:
    """What an escalation says."""

    subject: str
    text: str


@dataclass
class Escalator:
    """Sends messages for units along their paths (the unit's, else the nearest above)."""

    paths: dict[str, EscalationPath]
    smtp: SMTPSettings
    tree: OrgTree
    password: Callable[[str], str] | None = None
    """Secret name -> value, for ``smtp.password_secret``."""
    http: httpx.Client = field(default_factory=lambda: httpx.Client(timeout=10.0))

    def close(self) -> None:
        """Close the webhook client."""
        self.http.close()

    def path_for(self, unit: str) -> tuple[str, EscalationPath] | None:
        """The unit whose path applies to ``unit``, and the path."""
        name: str | None = unit
        developer = next((d for d in self.tree.developers if d.name == unit), None)
        if developer is not None and unit not in self.paths:
            name = developer.unit
        while name is not None:
            if name in self.paths:
                return name, self.paths[name]
            found = self.tree.unit(name)
            name = found.parent if found is not None else None
        if self.tree.name in self.paths:
            return self.tree.name, self.paths[self.tree.name]
        return None

    def send(self, unit: str, message: Message) -> list[str]:
        """Send ``message`` along ``unit``'s path; one line per channel: ``sent ...`` or
        ``failed ...`` (with the error's type, never credentials)."""
        found = self.path_for(unit)
        if found is None:
            return []
        _, path = found
        results = []
        if path.webhook:
            results.append(self._webhook(path.webhook, message))
        if path.email:
            results.append(self._email(path.email, message))
        return results

    def _webhook(self, url: str, message: Message) -> str:
        host = httpx.URL(url).host
        try:
            answer = self.http.post(url, json={"text": f"*{message.subject}*\n{message.text}"})
            answer.raise_for_status()
        except httpx.HTTPError as exc:
            return f"failed webhook {host}: {type(exc).__name__}"
        return f"sent webhook {host}"

    def _email(self, to: list[str], message: Message) -> str:
        mail = EmailMessage()
        mail["From"], mail["To"], mail["Subject"] = self.smtp.sender, ", ".join(to), message.subject
        mail.set_content(message.text)
        try:
            with smtplib.SMTP(self.smtp.host, self.smtp.port, timeout=10) as server:
                if self.smtp.starttls:
                    server.starttls(context=ssl.create_default_context())
                if self.smtp.username and self.smtp.password_secret and self.password:
                    server.login(self.smtp.username, self.password(self.smtp.password_secret))
                server.send_message(mail)
        except (OSError, smtplib.SMTPException) as exc:
            return f"failed email {self.smtp.host}: {type(exc).__name__}"
        return f"sent email to {len(to)} recipient(s)"
