"""Secret detection and redaction, including secrets split across lines and in URLs."""

from __future__ import annotations

import secrets
import string

import pytest

from orchestra.config.knowledge import SecretsConfig
from orchestra.errors import KnowledgeError
from orchestra.knowledge.secrets import find_secrets, redact, scrub, shannon_entropy

ANTHROPIC = "sk-ant-api03-" + "Xq7RmT2pLk9WvB4nZs8DfH3jGc6Ya1Ue5Io0PxQw"
OPENAI = "sk-proj-" + "T4kf8Qm2Rz7Lp1Xv9Bn3Wc6Hd5Gs0Ya8Je2Ku4Mi"
GITHUB = "ghp_" + "aB3dE5fG7hI9jK1lM3nO5pQ7rS9tU1vW3xY5"
AWS_ID = "AKIA" + "Z7QW3ERT5YUI8OPA"
AWS_SECRET = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYzQ8Lm3Np2V"
SLACK = "xoxb-" + "1234567890-0987654321-AbCdEfGhIjKlMnOpQrStUv"
STRIPE = "sk_live_" + "4eC39HqLyjWDarjtT1zdp7dc9Z"
GOOGLE = "AIza" + "SyD3x8Qm2Rz7Lp1Xv9Bn3Wc6Hd5Gs0Ya8Je"
JWT = (
    "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9."
    "eyJzdWIiOiIxMjM0NTY3ODkwIiwibmFtZSI6IkpvaG4ifQ."
    "SflKxwRJSMeKKF2QT4fwpMeJf36POk6yJV_adQssw5c"
)


def kinds(text: str) -> list[str]:
    return [f.kind for f in find_secrets(text)]


@pytest.mark.parametrize(
    ("text", "secret", "kind"),
    [
        (f"ANTHROPIC_API_KEY={ANTHROPIC}", ANTHROPIC, "anthropic_key"),
        (f'client = OpenAI(api_key="{OPENAI}")', OPENAI, "openai_key"),
        (f"git clone https://{GITHUB}@github.com/o/r", GITHUB, "github_token"),
        (f"aws_access_key_id = {AWS_ID}", AWS_ID, "aws_access_key"),
        (f"aws_secret_access_key = {AWS_SECRET}", AWS_SECRET, "aws_secret_key"),
        (f"SLACK_BOT_TOKEN={SLACK}", SLACK, "slack_token"),
        (f"stripe.api_key = '{STRIPE}'", STRIPE, "stripe_key"),
        (f"maps key {GOOGLE} in the html", GOOGLE, "google_api_key"),
        (f"Authorization: Bearer {JWT}", JWT, "jwt"),
    ],
)
def test_provider_tokens_are_redacted(text: str, secret: str, kind: str) -> None:
    result = scrub(text)
    assert secret not in result.text
    assert f"[REDACTED:{kind}]" in result.text
    assert kind in result.kinds


@pytest.mark.parametrize(
    "text",
    [
        # Python string concatenation across a `+`.
        f'KEY = "{ANTHROPIC[:20]}" + "{ANTHROPIC[20:]}"',
        # Implicit concatenation inside parentheses, wrapped over two lines.
        f'KEY = (\n    "{ANTHROPIC[:20]}"\n    "{ANTHROPIC[20:]}"\n)',
        # JavaScript concatenation over a line break.
        f'const key = "{ANTHROPIC[:18]}" +\n  "{ANTHROPIC[18:]}";',
        # A key wrapped over two lines in a config file or an e-mail.
        f"api_key: {ANTHROPIC[:30]}\n{ANTHROPIC[30:]}\n",
    ],
)
def test_secrets_split_across_lines_are_found(text: str) -> None:
    result = scrub(text)
    assert "anthropic_key" in result.kinds
    # Neither half of the key survives.
    assert ANTHROPIC[:20] not in result.text
    assert ANTHROPIC[-12:] not in result.text


@pytest.mark.parametrize(
    ("url", "password"),
    [
        ("postgresql://orchestra:Sup3rS3cret!@db.internal:5432/app", "Sup3rS3cret!"),
        ("redis://:hunter2pass@cache:6379/0", "hunter2pass"),
        ("https://deploy:tok3n-value@git.example.com/repo.git", "tok3n-value"),
    ],
)
def test_passwords_in_urls_are_redacted_and_the_rest_kept(url: str, password: str) -> None:
    result = scrub(f"connect with {url} please")
    assert password not in result.text
    assert "[REDACTED:url_password]@" in result.text
    assert url.split("@", 1)[1] in result.text  # host and path remain useful knowledge


@pytest.mark.parametrize(
    "text",
    [
        'DB_PASSWORD="correct-horse-battery"',
        "DB_PASSWORD=correcthorse42",
        "password: s3cretValue",
        "'client_secret': 'abcDEF123456ghi'",
        'if password == "hunter2x":',
    ],
)
def test_passwords_in_assignments_are_redacted(text: str) -> None:
    assert "password" in kinds(text)
    assert "[REDACTED:password]" in scrub(text).text


@pytest.mark.parametrize(
    "text",
    [
        "We keep the API key in the vault and rotate the password monthly.",
        'password = os.environ["DB_PASSWORD"]',
        "def login(username: str, password: str) -> Token:",
        "max_tokens = 4096",
        'api_key_env = "ANTHROPIC_API_KEY"',
        "password: ${DB_PASSWORD}",
        "token = get_token(session)",
        "commit 3f786850e387550fdab836ed7e6dc881de23001b fixed the flaky test",
        "sha256: 9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08",
        "request id 123e4567-e89b-12d3-a456-426614174000",
        "def test_reciprocal_rank_fusion_breaks_ties_deterministically2(): ...",
        "see https://github.com/encode/httpx/blob/master/httpx/_client.py#L120",
        "password = [REDACTED:password]",
        "secrets.py::<module>",
        "tests/test_secrets.py::test_tokens_are_found (part 2)",
        "secret_path: /etc/app/secret.key",
        'MODEL_NAME = "sentence-transformers/all-MiniLM-L6-v2"',
        "ORCHESTRA__TIERS__HAIKU__MODEL=qwen2.5-coder",
        '"SecretFinding": "orchestra.knowledge.secrets",',
        "set `api_key_secret: anthropic`.",
        "token = get_token(session)\ncommit 3f786850e387550fdab836ed7e6dc881de23001b",
    ],
)
def test_ordinary_text_is_left_alone(text: str) -> None:
    assert find_secrets(text) == []
    assert scrub(text).text == text


def test_hex_secret_is_found_when_named_as_a_secret() -> None:
    text = 'WEBHOOK_SECRET = "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08"'
    assert kinds(text) in (["password"], ["high_entropy"])


def test_high_entropy_tokens_are_found() -> None:
    alphabet = string.ascii_letters + string.digits
    rng = secrets.SystemRandom()
    missed = 0
    for _ in range(200):
        token = "".join(rng.choice(alphabet) for _ in range(40))
        if not find_secrets(f"value {token} end"):
            missed += 1
    # 40 random base62 characters almost always carry digits and both cases.
    assert missed <= 2


def test_entropy() -> None:
    assert shannon_entropy("aaaa") == 0.0
    assert shannon_entropy("abcd") == pytest.approx(2.0)


PRIVATE_KEY = (
    "-----BEGIN OPENSSH PRIVATE KEY-----\n"
    "b3BlbnNzaC1rZXktdjEAAAAABG5vbmUAAAAEbm9uZQAAAAAAAAABAAAAMwAAAAtzc2gtZW\n"
    "-----END OPENSSH PRIVATE KEY-----"
)


def test_private_keys_are_refused_by_default() -> None:
    with pytest.raises(KnowledgeError) as info:
        scrub(f"deploy key:\n{PRIVATE_KEY}\n")
    assert "private key" in info.value.message
    assert "b3BlbnNzaC1rZXkt" not in str(info.value)


def test_private_keys_can_be_redacted_when_configured() -> None:
    result = scrub(f"key:\n{PRIVATE_KEY}\n", SecretsConfig(refuse_private_keys=False))
    assert result.text == "key:\n[REDACTED:private_key]\n"


def test_refuse_policy_rejects_and_never_echoes_the_secret() -> None:
    with pytest.raises(KnowledgeError) as info:
        scrub(f"key {ANTHROPIC}", SecretsConfig(action="refuse"))
    assert ANTHROPIC not in str(info.value)
    assert "anthropic_key" in info.value.message


def test_redaction_is_idempotent() -> None:
    once = scrub(f"a {OPENAI} b {AWS_ID} c").text
    assert scrub(once).text == once
    assert redact(once, find_secrets(once)) == once
