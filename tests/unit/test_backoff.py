import pytest

import tickr
from tickr.backoff import constant_delay, exponential_backoff

TASK = tickr.Task("id", "t", None, "default")


def test_exponential_backoff_grows_and_caps_within_the_jitter() -> None:
    delay = exponential_backoff(base=1.0, factor=2.0, max_delay=60.0, jitter=0.25)
    for retry_count, expected in [(0, 1.0), (1, 2.0), (3, 8.0), (10, 60.0), (10_000, 60.0)]:
        samples = [delay(retry_count, RuntimeError(), TASK) for _ in range(200)]
        assert all(expected * 0.75 <= sample <= expected * 1.25 for sample in samples)
        assert max(samples) - min(samples) > 0, "jitter spreads retries"


def test_exponential_backoff_without_jitter_is_exact() -> None:
    delay = exponential_backoff(base=0.5, factor=3.0, max_delay=100.0, jitter=0.0)
    assert [delay(n, RuntimeError(), TASK) for n in range(4)] == [0.5, 1.5, 4.5, 13.5]


def test_huge_factors_do_not_overflow() -> None:
    delay = exponential_backoff(factor=1e10, max_delay=5.0, jitter=0.0)
    assert delay(500, RuntimeError(), TASK) == 5.0


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"base": 0}, "positive"),
        ({"max_delay": -1}, "max_delay must not be negative"),
        ({"factor": 0.5}, "factor"),
        ({"jitter": 1.0}, "jitter"),
        ({"jitter": -0.1}, "jitter"),
    ],
)
def test_invalid_backoff_settings_raise(kwargs: dict[str, float], match: str) -> None:
    with pytest.raises(ValueError, match=match):
        exponential_backoff(**kwargs)


def test_constant_delay() -> None:
    assert constant_delay(2.5)(7, RuntimeError(), TASK) == 2.5
    with pytest.raises(ValueError, match="negative"):
        constant_delay(-1)
