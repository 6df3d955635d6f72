"""The real Zoho CRM Python SDK (PyPI zohocrmsdk8-0) with tokenvault.zoho.TokenvaultStore,
against the fake accounts/API server on 127.0.0.1."""

import os
import subprocess
import sys
import time

import pytest

import tokenvault
from conftest import start_workers, store_files_bytes
from fake_zoho import CLIENT_ID, CLIENT_SECRET, ORG_ID

if os.environ.get("TOKENVAULT_REQUIRE_SERVICES") != "1":
    pytest.importorskip("zohocrmsdk")  # in CI a missing SDK fails the import below instead

from zohocrmsdk.src.com.zoho.api.authenticator.oauth_token import OAuthToken  # noqa: E402
from zohocrmsdk.src.com.zoho.crm.api.dc.data_center import DataCenter  # noqa: E402
from zohocrmsdk.src.com.zoho.crm.api.initializer import Initializer  # noqa: E402
from zohocrmsdk.src.com.zoho.crm.api.user_signature import UserSignature  # noqa: E402

from tokenvault.zoho import TokenvaultStore  # noqa: E402

USER = "ann@example.com"
SDK_USER = USER + ":" + ORG_ID  # the SDK names a user "email:org id" after a grant
WORKER = os.path.join(os.path.dirname(__file__), "zoho_worker.py")


@pytest.fixture(autouse=True)
def sdk_never_refreshes(monkeypatch):
    """In this process the SDK's own refresh fails the test: every refresh must be the store's
    (the SDK would also reach the fake, with one request, and hide a store that never refreshes)."""
    def refused(*args, **kwargs):
        raise AssertionError("the SDK refreshed the token itself, outside the store's lock")

    monkeypatch.setattr(OAuthToken, "refresh_access_token", refused)


def environment(fake):
    return DataCenter.Environment(fake.base_url, fake.token_url, fake.base_url)


def refreshed_by_store(fake):
    """Every refresh request the fake saw came from tokenvault, none from the SDK (requests)."""
    return fake.refresh_agents and not any("python-requests" in a for a in fake.refresh_agents)


def initialize(fake, store, token, tmp_path):
    Initializer.initialize(environment=environment(fake), token=token, store=store,
                           resource_path=str(tmp_path))
    return token


def granted(fake, store, tmp_path):
    """The SDK's grant-token flow: the store ends up with the full record."""
    token = OAuthToken(client_id=CLIENT_ID, client_secret=CLIENT_SECRET,
                       grant_token=fake.grant(USER), redirect_url="https://app.example.com/cb")
    return initialize(fake, store, token, tmp_path)


def expire(store, at="1000"):
    record = store.store.find_token({"user_name": SDK_USER})
    record["expiry_time"] = at
    store.store.save_token(record)
    return record


def test_the_grant_flow_stores_the_full_record(fake, uri, key, tmp_path):
    store = TokenvaultStore(uri, key=key, token_url=fake.token_url)
    token = granted(fake, store, tmp_path)
    assert fake.stats()["authorization_code"] == 1
    assert fake.stats()["users"] == 1 and fake.stats()["org"] == 1

    [record] = store.store.get_tokens()
    assert record["id"] == token.get_id()
    assert record["user_name"] == SDK_USER
    assert record["client_id"] == CLIENT_ID and record["client_secret"] == CLIENT_SECRET
    assert record["access_token"] == token.get_access_token()
    assert record["refresh_token"] == token.get_refresh_token()
    assert record["redirect_url"] == "https://app.example.com/cb"
    assert record["api_domain"] == fake.base_url
    assert int(record["expiry_time"]) > 0 and record["expiry_time"] == token.get_expires_in()


def test_a_second_initialize_by_user_name_makes_no_request(fake, uri, key, tmp_path):
    store = TokenvaultStore(uri, key=key, token_url=fake.token_url)
    first = granted(fake, store, tmp_path)
    before = fake.stats()
    again = initialize(fake, TokenvaultStore(uri, key=key), OAuthToken(user_signature=UserSignature(SDK_USER)),
                       tmp_path)
    assert fake.stats() == before
    assert again.get_access_token() == first.get_access_token()
    assert again.get_id() == first.get_id()


def test_an_expired_token_is_refreshed_once_in_the_store_and_the_rotated_refresh_token_kept(fake, uri, key,
                                                                                          tmp_path):
    store = TokenvaultStore(uri, key=key, token_url=fake.token_url)
    first = granted(fake, store, tmp_path)
    old = expire(store)
    token = initialize(fake, store, OAuthToken(user_signature=UserSignature(SDK_USER)), tmp_path)
    assert fake.stats()["refresh_token"] == 1 and fake.stats()["refused"] == 0
    assert refreshed_by_store(fake)
    record = store.store.find_token_by_id(first.get_id())
    assert token.get_access_token() == record["access_token"] != old["access_token"]
    assert record["refresh_token"] != old["refresh_token"]  # the server rotated it; we kept the new one
    assert int(record["expiry_time"]) > int(old["expiry_time"])
    assert len(store.store.get_tokens()) == 1


def test_the_token_url_defaults_to_the_sdk_environment_for_a_non_zoho_domain(fake, uri, key, tmp_path):
    store = TokenvaultStore(uri, key=key)  # no token_url: the api_domain is the fake's
    granted(fake, store, tmp_path)
    expire(store)
    initialize(fake, store, OAuthToken(user_signature=UserSignature(SDK_USER)), tmp_path)
    assert fake.stats()["refresh_token"] == 1 and refreshed_by_store(fake)


def test_a_token_inside_the_sdks_own_window_is_refreshed_by_the_store(fake, uri, key, tmp_path):
    # The SDK refreshes a token expiring within 5 s by itself; the store must get there first.
    store = TokenvaultStore(uri, key=key, token_url=fake.token_url)
    granted(fake, store, tmp_path)
    expire(store, at=str(int(time.time() * 1000) + 7000))
    token = initialize(fake, store, OAuthToken(user_signature=UserSignature(SDK_USER)), tmp_path)
    assert fake.stats()["refresh_token"] == 1 and refreshed_by_store(fake)
    assert int(token.get_expires_in()) > int(time.time() * 1000) + 60_000


def test_a_token_the_sdk_passes_with_its_own_stale_values_gets_the_fresh_ones(fake, uri, key, tmp_path):
    store = TokenvaultStore(uri, key=key, token_url=fake.token_url)
    first = granted(fake, store, tmp_path)
    old = expire(store)
    # By access token (the SDK's access-token mode): the object keeps no stale access token.
    by_access = OAuthToken(access_token=old["access_token"], find_user=False)
    assert store.find_token(by_access) is by_access
    fresh = store.store.find_token_by_id(first.get_id())
    assert by_access.get_access_token() == fresh["access_token"] != old["access_token"]
    assert by_access.get_expires_in() == fresh["expiry_time"]
    assert by_access.get_refresh_token() == fresh["refresh_token"]
    # A record without the client secret refreshes with the secret the SDK's token carries,
    # as the SDK would; the secret is not written into the record.
    record = expire(store)
    store.store.delete_token(record["id"])
    record.update(client_secret=None, id=None)
    store.store.save_token(record)
    query = OAuthToken(client_id=CLIENT_ID, client_secret=CLIENT_SECRET,
                       refresh_token=record["refresh_token"], user_signature=UserSignature(SDK_USER))
    assert store.find_token(query) is query
    assert fake.stats()["refresh_token"] == 2 and fake.stats()["refused"] == 0
    assert query.get_access_token() == store.store.find_token({"user_name": SDK_USER})["access_token"]
    assert store.store.find_token({"user_name": SDK_USER})["client_secret"] is None


def test_by_id_the_sdk_gets_a_fresh_token_and_an_unknown_id_raises(fake, uri, key, tmp_path):
    store = TokenvaultStore(uri, key=key, token_url=fake.token_url)
    first = granted(fake, store, tmp_path)
    expire(store)
    by_id = initialize(fake, store, OAuthToken(id=first.get_id()), tmp_path)
    assert fake.stats()["refresh_token"] == 1 and refreshed_by_store(fake)
    assert by_id.get_access_token() == store.store.find_token_by_id(first.get_id())["access_token"]
    for unknown in ("no-such-id", ""):
        with pytest.raises(tokenvault.NotFound):
            store.find_token_by_id(unknown)


def test_the_other_store_methods_use_the_sdks_tokens(fake, uri, key, tmp_path):
    store = TokenvaultStore(uri, key=key, token_url=fake.token_url)
    first = granted(fake, store, tmp_path)
    access_only = OAuthToken(access_token="1000.access.only", find_user=False)
    store.save_token(access_only)
    assert access_only.get_id() is not None

    tokens = store.get_tokens()
    assert all(isinstance(t, OAuthToken) for t in tokens)
    by_id = {t.get_id(): t for t in tokens}
    assert by_id[first.get_id()].get_user_signature().get_name() == SDK_USER
    assert by_id[first.get_id()].get_refresh_token() == first.get_refresh_token()
    assert by_id[access_only.get_id()].get_access_token() == "1000.access.only"

    query = OAuthToken(access_token="1000.access.only", find_user=False)
    assert store.find_token(query) is query and query.get_id() == access_only.get_id()
    store.delete_token(access_only.get_id())
    assert [t.get_id() for t in store.get_tokens()] == [first.get_id()]
    store.delete_tokens()
    assert store.get_tokens() == []


def test_a_refused_refresh_fails_the_sdk_call_and_keeps_the_record(fake, uri, key, tmp_path):
    store = TokenvaultStore(uri, key=key, token_url=fake.token_url)
    granted(fake, store, tmp_path)
    record = expire(store)
    record["refresh_token"] = "1000.refresh.revoked"
    store.store.save_token(record)
    with pytest.raises(Exception) as error:
        initialize(fake, store, OAuthToken(user_signature=UserSignature(SDK_USER)), tmp_path)
    assert isinstance(error.value, tokenvault.RefreshError) or isinstance(error.value.__cause__,
                                                                         tokenvault.RefreshError)
    assert store.store.find_token_by_id(record["id"])["access_token"] == record["access_token"]


def test_eight_sdk_processes_on_one_expired_token_make_one_refresh(slow_fake, uri, key, tmp_path):
    store = TokenvaultStore(uri, key=key, token_url=slow_fake.token_url)
    granted(slow_fake, store, tmp_path)
    expire(store)
    gate = tmp_path / "go"
    workers = start_workers(lambda _: [sys.executable, WORKER, slow_fake.base_url, uri, key.hex(),
                                       SDK_USER, str(gate)], 8, gate)
    results = [w.communicate(timeout=120) for w in workers]
    assert [w.returncode for w in workers] == [0] * 8, [err for _, err in results]
    tokens = {out.strip() for out, _ in results}
    assert slow_fake.stats()["refresh_token"] == 1
    assert slow_fake.stats()["refused"] == 0
    assert len(tokens) == 1 and tokens == {store.store.find_token({"user_name": SDK_USER})["access_token"]}


def test_no_token_secret_or_user_name_in_any_file_of_the_store(fake, store_dir, uri, key, tmp_path):
    store = TokenvaultStore(uri, key=key, token_url=fake.token_url)
    granted(fake, store, tmp_path)
    expire(store)
    initialize(fake, store, OAuthToken(user_signature=UserSignature(SDK_USER)), tmp_path)
    record = store.store.find_token({"user_name": SDK_USER})
    data = store_files_bytes(store_dir)
    assert data, "the store directory is empty"
    for field in ("access_token", "refresh_token", "client_secret", "grant_token", "user_name"):
        assert record[field].encode() not in data, field
    assert USER.encode() not in data and CLIENT_SECRET.encode() not in data


def test_skew_is_checked(uri, key):
    for bad in (0, 0.5, -1, float("nan"), float("inf"), "5"):
        with pytest.raises(ValueError, match="1 or more"):
            TokenvaultStore(uri, key=key, skew=bad)


def test_without_the_sdk_the_import_error_says_what_to_install():
    code = (
        "import sys\n"
        "class Block:\n"
        "    def find_spec(self, name, path=None, target=None):\n"
        "        if name.split('.')[0] == 'zohocrmsdk': raise ImportError('blocked')\n"
        "sys.meta_path.insert(0, Block())\n"
        "import tokenvault\n"
        "try:\n"
        "    import tokenvault.zoho\n"
        "except ImportError as e:\n"
        "    print(e)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60,
                         cwd="/")
    assert "pip install zohocrmsdk8-0" in out.stdout, out.stderr
