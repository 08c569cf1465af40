"""When a sending window opens and closes: per zone, across daylight saving, past midnight, on some days
only, and across every zone a number may be in."""

from datetime import UTC, datetime

import pytest

from smsplatform.contacts import phones
from smsplatform.sending.windows import SendWindow, openings


def _window(
    start: str = "09:00", end: str = "20:00", days: list[str] | None = None, zone: str = "recipient"
) -> SendWindow:
    settings = {"send_window": {"start": start, "end": end, "timezone": zone, **({"days": days} if days else {})}}
    window = SendWindow.from_settings(settings)
    assert window is not None
    return window


def _utc(*parts: int) -> datetime:
    return datetime(*parts, tzinfo=UTC)


def test_open_now_runs_until_the_local_end() -> None:
    assert _window().opening(["Europe/London"], _utc(2026, 12, 1, 10)) == (_utc(2026, 12, 1, 10), _utc(2026, 12, 1, 20))


def test_closed_now_opens_at_the_next_local_start() -> None:
    # 05:00 in New York (UTC-5 in December): opens at 09:00 local, 14:00 UTC.
    found = _window().opening(["America/New_York"], _utc(2026, 12, 1, 10))
    assert found == (_utc(2026, 12, 1, 14), _utc(2026, 12, 2, 1))


def test_daylight_saving_moves_the_opening_in_utc() -> None:
    # London 09:00 is 08:00 UTC in summer (BST) and 09:00 UTC in winter; the change is 2026-10-25.
    summer = _window().opening(["Europe/London"], _utc(2026, 10, 24, 5))
    winter = _window().opening(["Europe/London"], _utc(2026, 10, 25, 5))
    assert summer is not None
    assert winter is not None
    assert (summer[0], winter[0]) == (_utc(2026, 10, 24, 8), _utc(2026, 10, 25, 9))


def test_a_window_past_midnight_belongs_to_the_day_it_starts_on() -> None:
    night = _window("22:00", "06:00", days=["fri"])
    # Saturday 02:00 UTC in London: inside Friday's night window.
    assert night.opening(["Europe/London"], _utc(2026, 12, 5, 2)) == (_utc(2026, 12, 5, 2), _utc(2026, 12, 5, 6))
    # Saturday 23:00: Saturday's night is not in the window; next is Friday 22:00.
    assert night.opening(["Europe/London"], _utc(2026, 12, 5, 23)) == (_utc(2026, 12, 11, 22), _utc(2026, 12, 12, 6))


def test_weekdays_only_skip_the_weekend() -> None:
    workdays = _window(days=["mon", "tue", "wed", "thu", "fri"])
    # Saturday 10:00 in London: next opening Monday 09:00.
    assert workdays.opening(["Europe/London"], _utc(2026, 12, 5, 10)) == (_utc(2026, 12, 7, 9), _utc(2026, 12, 7, 20))


def test_a_number_in_several_zones_waits_until_the_window_is_open_in_all_of_them() -> None:
    # New York and Los Angeles: 09:00-20:00 in both is 17:00-01:00 UTC in December.
    found = _window().opening(["America/New_York", "America/Los_Angeles"], _utc(2026, 12, 1, 15))
    assert found == (_utc(2026, 12, 1, 17), _utc(2026, 12, 2, 1))


def test_zones_too_far_apart_for_the_window_never_open() -> None:
    short = _window("09:00", "12:00")
    assert short.opening(["Pacific/Auckland", "Europe/London"], _utc(2026, 12, 1, 10)) is None
    found = openings(short, ["Pacific/Auckland|Europe/London", "Europe/London"], _utc(2026, 12, 1, 10))
    assert (found.keys, found.never, found.not_before) == (
        ["Europe/London"],
        ["Pacific/Auckland|Europe/London"],
        [None],
    )


@pytest.mark.parametrize(
    ("number", "zones"),
    [
        ("+12025550123", "America/New_York"),
        ("+14155550100", "America/Los_Angeles"),
        ("+919876543210", "Asia/Calcutta"),
        ("+447400123456", "Europe/Guernsey|Europe/Isle_of_Man|Europe/London"),
        ("+8613800138000", "Asia/Shanghai"),
    ],
)
def test_a_numbers_zones_come_from_libphonenumbers_prefixes(number: str, zones: str) -> None:
    assert phones.time_zones(number) == zones


def test_an_unknown_zone_in_the_data_falls_back_to_utc_rather_than_never_sending() -> None:
    assert _window().opening(["Etc/Unknown"], _utc(2026, 12, 1, 10)) == (_utc(2026, 12, 1, 10), _utc(2026, 12, 1, 20))
