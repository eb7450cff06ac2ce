"""The time scale divides the sender's pacing interval too, so a demo setting must never
reach a real Twilio account: 720 would text at 720 times the agency's rate. The Twilio
stand-in on this machine takes any speed."""

from __future__ import annotations

from typing import Any

import pytest
from pydantic import SecretStr, ValidationError

from activities.sms_providers import make_provider
from callerloop.core.settings import Settings
from devtools.devstack import StackError, check_demo_speed_with_twilio

ACCOUNT_SID = "AC" + "0" * 32


def with_twilio_account(**settings: Any) -> Settings:
    """Settings of a deployment with a real Twilio account."""
    return Settings(
        sms_provider="twilio",
        twilio_account_sid=ACCOUNT_SID,
        twilio_auth_token=SecretStr("token"),
        **settings,
    )


@pytest.mark.parametrize(
    "base_url",
    [None, "https://api.twilio.com", "http://10.0.0.5:8089", "http://twilio-proxy.internal"],
)
def test_a_sped_up_time_scale_with_a_real_twilio_account_is_refused(
    base_url: str | None,
) -> None:
    with pytest.raises(ValidationError) as refused:
        with_twilio_account(time_scale=720, twilio_api_base_url=base_url)
    message = str(refused.value)
    assert "CALLERLOOP_TIME_SCALE=720 with a real Twilio account" in message
    assert "multiplies the send rate" in message and "CALLERLOOP_TIME_SCALE=1" in message


@pytest.mark.parametrize("standin", ["http://127.0.0.1:8089", "http://localhost:8089"])
def test_the_twilio_standin_on_this_machine_takes_any_time_scale(standin: str) -> None:
    settings = with_twilio_account(time_scale=720, twilio_api_base_url=standin)
    assert make_provider(settings).name == "twilio"


def test_real_twilio_at_time_scale_one_and_the_local_provider_at_any_are_fine() -> None:
    assert with_twilio_account(time_scale=1).time_scale == 1
    assert Settings(sms_provider="local", time_scale=720).time_scale == 720


def test_the_provider_refuses_settings_changed_after_validation() -> None:
    """A copy or an assignment skips the validator; the provider checks again."""
    settings = with_twilio_account().model_copy(update={"time_scale": 720})
    with pytest.raises(ValueError, match="CALLERLOOP_TIME_SCALE=720 would multiply the send rate"):
        make_provider(settings)


def test_make_run_with_a_real_twilio_account_refuses_a_demo_speed() -> None:
    settings = with_twilio_account()
    with pytest.raises(StackError, match="demo speed 720x would text at 720 times"):
        check_demo_speed_with_twilio(settings, 720)
    check_demo_speed_with_twilio(settings, 1)  # real time is fine
    # Without an account `make run` starts its own Twilio stand-in: any speed.
    check_demo_speed_with_twilio(Settings(sms_provider="twilio"), 720)
