"""Bad input from Python: wrong types, text that is not Unicode, huge values, bad arguments.
Each is a Python exception with a clear message, never a crash, and the store is unchanged."""

import pytest

import tokenvault

HUGE = "x" * (10 * 1024 * 1024)


@pytest.mark.parametrize(
    "token, error, message",
    [
        (None, TypeError, "a token is a dict"),
        ("user_name=ann", TypeError, "a token is a dict"),
        ([("user_name", "ann")], TypeError, "a token is a dict"),
        ({1: "ann"}, TypeError, "field names"),
        ({"nope": "x", "access_token": "a"}, tokenvault.InvalidToken, 'unknown token field "nope"'),
        ({"access_token": 5}, TypeError, "access_token must be str or None, not int"),
        ({"access_token": b"bytes"}, TypeError, "not bytes"),
        ({"access_token": "\ud800lone surrogate"}, tokenvault.InvalidToken, "not valid Unicode"),
        ({"\udcff": "x"}, tokenvault.InvalidToken, "not valid Unicode"),
        ({"access_token": HUGE}, tokenvault.InvalidToken, "longer than"),
        ({"user_name": HUGE, "access_token": "a"}, tokenvault.InvalidToken, "longer than"),
        ({"id": "i" * 5000, "access_token": "a"}, tokenvault.InvalidToken, "id"),
        ({"access_token": "a", "expiry_time": -1}, tokenvault.InvalidToken, "epoch milliseconds"),
        ({"access_token": "a", "expiry_time": 2 ** 70}, tokenvault.InvalidToken, "epoch milliseconds"),
        ({"access_token": "a", "expiry_time": "12ab"}, tokenvault.InvalidToken, "digits"),
        ({"access_token": "a", "expiry_time": True}, TypeError, "not bool"),
        ({"access_token": "a", "expiry_time": 1.5}, TypeError, "not float"),
    ],
)
def test_a_bad_token_raises_and_saves_nothing(store, token, error, message):
    with pytest.raises(error, match=message):
        store.save_token(token)
    with pytest.raises(error, match=message):
        store.find_token(token)
    assert store.get_tokens() == []


def test_no_value_is_echoed_in_an_error(store):
    secret = "1000.secret-refresh-value"
    for token in ({"refresh_token": secret, "expiry_time": secret},
                  {"refresh_token": secret + "\ud800"},
                  {"refresh_token": secret * 1000}):
        with pytest.raises(tokenvault.InvalidToken) as error:
            store.save_token(token)
        assert "secret-refresh-value" not in str(error.value)


def test_control_characters_round_trip_exactly(store):
    token = {"user_name": "ann\x00\x1b[31m\u202e@example.com", "refresh_token": "r\n\t\x7f"}
    token_id = store.save_token(dict(token))
    found = store.find_token_by_id(token_id)
    assert found["user_name"] == token["user_name"] and found["refresh_token"] == token["refresh_token"]


@pytest.mark.parametrize("bad_id, error", [(None, TypeError), (7, TypeError), (b"id", TypeError),
                                           ("\ud800", tokenvault.InvalidToken)])
def test_a_bad_id_raises(store, bad_id, error):
    for call in (store.find_token_by_id, store.delete_token):
        with pytest.raises(error):
            call(bad_id)


def test_odd_but_valid_ids_find_nothing(store):
    assert store.find_token_by_id("") is None
    assert store.find_token_by_id("\x00") is None
    assert store.find_token_by_id("i" * 100_000) is None


@pytest.mark.parametrize(
    "kwargs, error, message",
    [
        ({}, ValueError, "needs one of passphrase="),
        ({"key": b"short"}, ValueError, "32 bytes, not 5"),
        ({"key": "0" * 32}, TypeError, "key must be bytes"),
        ({"key": bytearray(32)}, TypeError, "key must be bytes"),
        ({"passphrase": ""}, ValueError, "empty"),
        ({"passphrase": b"bytes"}, TypeError, "passphrase must be str"),
        ({"passphrase": "p\ud800"}, tokenvault.InvalidToken, "not valid Unicode"),
        ({"passphrase": "p", "key": bytes(32)}, ValueError, "give one credential"),
        ({"key": bytes(32), "keychain": True}, ValueError, "give one credential"),
    ],
)
def test_bad_credentials_raise_before_anything_is_created(store_dir, kwargs, error, message):
    path = store_dir / "never.db"
    with pytest.raises(error, match=message):
        tokenvault.Store.create("sqlite:" + str(path), **kwargs)
    assert not path.exists()


@pytest.mark.parametrize("uri", ["", "tokens.db", "/abs/tokens.db", "sqlite:", "ftp://host/x",
                                 "sqlite:/tmp/\x00nul", "postgres://"])
def test_bad_uris_raise_a_tokenvault_error(uri):
    with pytest.raises(tokenvault.Error):
        tokenvault.Store.open(uri, key=bytes(32))


@pytest.mark.parametrize(
    "kwargs, error",
    [
        ({}, ValueError),
        ({"user": "a", "id": "b"}, ValueError),
        ({"user": 5}, TypeError),
        ({"user": "a", "skew": -1.0}, ValueError),
        ({"user": "a", "skew": float("nan")}, ValueError),
        ({"user": "a", "skew": float("inf")}, ValueError),
        ({"user": "a", "token_url": 5}, TypeError),
    ],
)
def test_bad_access_token_arguments_raise(store, kwargs, error):
    with pytest.raises(error):
        store.access_token(**kwargs)


def test_a_hostile_token_url_is_refused_before_any_request(store):
    store.save_token({"user_name": "ann", "refresh_token": "r", "client_id": "c",
                      "client_secret": "s", "expiry_time": "1000", "access_token": "a"})
    for url in ("http://evil.example.com/token", "https://user:pw@accounts.zoho.com/oauth/v2/token",
                "file:///etc/passwd", "not a url"):
        with pytest.raises(tokenvault.RefreshError):
            store.access_token(user="ann", token_url=url)
    assert store.find_token({"user_name": "ann"})["access_token"] == "a"
