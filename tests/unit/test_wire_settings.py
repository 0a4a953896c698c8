import ssl

import pytest

from tickr._broker.wire import WireSettings, pack


def test_tls_urls_verify_the_certificate_and_host_by_default() -> None:
    settings = WireSettings.from_url("rediss://:pw@redis.example:6380/2")
    assert settings.ssl_context is not None
    assert settings.ssl_context.verify_mode == ssl.CERT_REQUIRED
    assert settings.ssl_context.check_hostname
    assert (settings.host, settings.port, settings.db, settings.password) == (
        "redis.example",
        6380,
        2,
        "pw",
    )


def test_tls_verification_can_be_turned_off_explicitly() -> None:
    settings = WireSettings.from_url("rediss://redis.example/0?ssl_cert_reqs=none")
    assert settings.ssl_context is not None
    assert settings.ssl_context.verify_mode == ssl.CERT_NONE


def test_plain_and_unix_urls() -> None:
    assert WireSettings.from_url("redis://10.0.0.5").ssl_context is None
    unix = WireSettings.from_url("unix:///run/redis.sock?db=3")
    assert (unix.path, unix.db) == ("/run/redis.sock", 3)
    user = WireSettings.from_url("redis://alice:secret@h:1/0")
    assert (user.username, user.password) == ("alice", "secret")


def test_commands_are_packed_as_resp() -> None:
    assert pack(("SET", "k", b"\x00v", 12, 1.5)) == (
        b"*5\r\n$3\r\nSET\r\n$1\r\nk\r\n$2\r\n\x00v\r\n$2\r\n12\r\n$3\r\n1.5\r\n"
    )
    with pytest.raises(TypeError, match="cannot send"):
        pack(("SET", object()))


@pytest.mark.parametrize(
    ("value", "encoded"),
    [
        (True, b"1"),
        (bytearray(b"ab"), b"ab"),
        (memoryview(b"ab"), b"ab"),
        (2**70, b"1180591620717411303424"),
        (1 / 3, b"0.3333333333333333"),
        (-0.0, b"-0.0"),
        ("é", "é".encode()),
    ],
)
def test_every_value_kind_packs_the_same_in_c_or_python(value: object, encoded: bytes) -> None:
    """hiredis packs str, bytes, int and float; the rest falls back to Python, alike."""
    assert pack(["GET", value]) == b"*2\r\n$3\r\nGET\r\n$%d\r\n%s\r\n" % (len(encoded), encoded)


def test_bad_urls_are_rejected() -> None:
    with pytest.raises(ValueError, match="Redis URL"):
        WireSettings.from_url("http://example.com")
