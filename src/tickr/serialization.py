"""How payloads and results are encoded: with msgpack, never pickle.

A payload or result may be anything msgpack encodes: dict, list, tuple (decoded as a
list), str, bytes, int (64-bit), float, bool, None, and timezone-aware datetimes (decoded
as UTC datetimes).  Anything else raises `TypeError` when encoded, and so does a value
that encodes but could not be decoded again: a dict key that is a tuple (it would come
back as an unhashable list), or a datetime whose UTC instant is outside years 1-9999.

`encode_value` checks a value by these rules exactly as `Client.enqueue` does (and gives
the bytes whose size counts against `max_payload_bytes`); `decode_value` reads them back.
"""

from tickr._serialization import MessageDecodeError, decode_value, encode_value

__all__ = ["MessageDecodeError", "decode_value", "encode_value"]
