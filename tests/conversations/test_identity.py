import hashlib
import hmac

import pytest

from conversations.identity import subject_hash


def test_is_hmac_sha256_of_channel_and_id() -> None:
    h = subject_hash("k", "telegram", 12345)
    assert h == hmac.new(b"k", b"telegram:12345", hashlib.sha256).hexdigest()
    assert len(h) == 64 and all(c in "0123456789abcdef" for c in h)


def test_int_and_str_ids_agree_and_inputs_separate() -> None:
    assert subject_hash("k", "telegram", 7) == subject_hash("k", "telegram", "7")
    assert subject_hash("k", "telegram", 7) != subject_hash("k", "web", 7)
    assert subject_hash("k", "telegram", 7) != subject_hash("k2", "telegram", 7)
    assert "12345" not in subject_hash("k", "telegram", 12345)


@pytest.mark.parametrize(("key", "channel"), [("", "telegram"), ("k", ""), ("k", "a:b")])
def test_rejects_bad_input(key: str, channel: str) -> None:
    with pytest.raises(ValueError):
        subject_hash(key, channel, 1)
