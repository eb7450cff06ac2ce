"""The follow-up's configuration: an agency file's `[follow_up]` and the deployment's
CALLERLOOP_SMTP_* settings, each mistake refused with what is wrong and where."""

from __future__ import annotations

import tomllib
from pathlib import Path
from typing import Any

import pytest
from pydantic import ValidationError

from callerloop.core.agency_config import (
    AgencyConfigError,
    FollowUp,
    load_agency_file,
    parse_agency_config,
)
from callerloop.core.settings import PROJECT_ROOT, Settings

EXAMPLE = PROJECT_ROOT / "agencies" / "example.toml"


def example_with(follow_up: dict[str, Any]) -> None:
    data = tomllib.loads(EXAMPLE.read_text(encoding="utf-8"))
    parse_agency_config({**data, "follow_up": follow_up}, "example", str(EXAMPLE))


def test_the_example_agency_mails_both_kinds_at_once_to_fictional_addresses() -> None:
    follow_up = load_agency_file(EXAMPLE).follow_up
    assert (follow_up.notify, follow_up.delivery) == ("both", "immediate")
    assert follow_up.recipients
    assert all(address.endswith("@example.gov") for address in follow_up.recipients)


def test_follow_up_is_off_unless_an_agency_turns_it_on() -> None:
    assert FollowUp() == FollowUp(notify="off", recipients=[], delivery="immediate")


@pytest.mark.parametrize(
    ("follow_up", "message"),
    [
        (
            {"notify": "both"},
            "follow_up: notify = 'both' needs recipients (the supervisors' addresses)",
        ),
        (
            {"notify": "comment", "recipients": ["sgt.lee"]},
            "follow_up.recipients.0: 'sgt.lee' is not an e-mail address like "
            "supervisor@police.example.gov",
        ),
        (
            {"notify": "comment", "recipients": ["ok@police.example.gov", "lee@localhost"]},
            "follow_up.recipients.1: 'lee@localhost': the domain needs a name with a dot",
        ),
        (
            {"notify": "comment", "recipients": ["Sgt Lee <lee@police.example.gov>"]},
            "follow_up.recipients.0: 'Sgt Lee <lee@police.example.gov>' is not an e-mail address",
        ),
        (
            {"notify": "both", "recipients": ["Lee@police.example.gov", "lee@police.example.gov"]},
            "follow_up: recipients repeated: ['lee@police.example.gov']",
        ),
        (
            {"notify": "always", "recipients": ["lee@police.example.gov"]},
            "follow_up.notify: Input should be 'off', 'low_score', 'comment' or 'both'",
        ),
        (
            {"notify": "both", "recipients": ["lee@police.example.gov"], "delivery": "daily"},
            "follow_up.delivery: Input should be 'immediate' or 'hourly'",
        ),
        (
            {"notify": "both", "recipients": ["lee@police.example.gov"], "low_score": 3},
            "follow_up.low_score: Extra inputs are not permitted",
        ),
    ],
)
def test_a_wrong_follow_up_section_says_what_and_where(
    follow_up: dict[str, Any], message: str
) -> None:
    with pytest.raises(AgencyConfigError) as refused:
        example_with(follow_up)
    assert str(refused.value).startswith(f"{EXAMPLE}: ")
    assert message in str(refused.value)


def test_the_mail_server_needs_a_sender_address() -> None:
    with pytest.raises(ValidationError) as missing:
        Settings(smtp_host="smtp.police.example.gov")
    assert "CALLERLOOP_SMTP_FROM (the sender, needed with CALLERLOOP_SMTP_HOST): '' is not" in str(
        missing.value
    )
    with pytest.raises(ValidationError) as wrong:
        Settings(smtp_host="smtp.police.example.gov", smtp_from="callerloop")
    assert "'callerloop' is not an e-mail address" in str(wrong.value)
    assert Settings(smtp_host="", smtp_from="").smtp_host == ""  # no mail: nothing needed


def test_a_password_never_crosses_the_network_in_clear() -> None:
    common: dict[str, Any] = {
        "smtp_from": "callerloop@police.example.gov",
        "smtp_username": "callerloop",
        "smtp_security": "none",
    }
    with pytest.raises(ValidationError) as refused:
        Settings(smtp_host="smtp.police.example.gov", **common)
    assert "the password would cross the network to smtp.police.example.gov in clear" in str(
        refused.value
    )
    assert Settings(smtp_host="127.0.0.1", **common).smtp_security == "none"  # a local relay
    assert Settings(smtp_host="localhost", **common).smtp_security == "none"


def test_mail_settings_from_the_environment(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    for name, value in {
        "CALLERLOOP_SMTP_HOST": "smtp.police.example.gov",
        "CALLERLOOP_SMTP_PORT": "465",
        "CALLERLOOP_SMTP_SECURITY": "ssl",
        "CALLERLOOP_SMTP_USERNAME": "callerloop",
        "CALLERLOOP_SMTP_PASSWORD": "s3cret",
        "CALLERLOOP_SMTP_FROM": "callerloop@police.example.gov",
        "CALLERLOOP_SMTP_CA_CERT": "",
    }.items():
        monkeypatch.setenv(name, value)
    monkeypatch.chdir(tmp_path)  # no .env file of the checkout's
    settings = Settings()
    assert (settings.smtp_port, settings.smtp_security, settings.smtp_ca_cert) == (465, "ssl", None)
    assert settings.smtp_password.get_secret_value() == "s3cret"
    assert "s3cret" not in repr(settings)
    monkeypatch.setenv("CALLERLOOP_SMTP_SECURITY", "tls")
    with pytest.raises(ValidationError, match="smtp_security"):
        Settings()
