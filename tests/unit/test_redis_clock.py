import time

from tickr._broker.redis_clock import MAX_READING_RTT, RedisClock


def test_before_a_reading_it_tells_this_machines_time() -> None:
    clock = RedisClock()
    assert abs(clock.now_ms() - time.time() * 1000) < 50
    assert clock.age() == float("inf")


def test_a_reading_sets_it_to_redis_time_at_the_middle_of_the_round_trip() -> None:
    clock = RedisClock()
    sent = time.monotonic()
    redis_seconds = 2_000_000_000.0  # Redis' clock far from this machine's
    assert clock.set(redis_seconds, sent, sent + 0.002)
    elapsed = time.monotonic() - (sent + 0.001)
    assert abs(clock.now_ms() - (redis_seconds + elapsed) * 1000) < 50
    assert clock.age() < 1


def test_a_slow_reading_is_not_taken() -> None:
    clock = RedisClock()
    before = clock.now_ms()
    sent = time.monotonic()
    assert not clock.set(2_000_000_000.0, sent, sent + MAX_READING_RTT + 0.1)
    assert abs(clock.now_ms() - before) < 50
    assert clock.age() == float("inf")


def test_a_skipped_reading_counts_as_recent() -> None:
    clock = RedisClock()
    clock.skip_reading()
    assert clock.age() < 1
