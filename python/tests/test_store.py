"""tokenvault.Store: the six operations, maintenance, every exception class, threads, fork."""

import base64
import json
import os
import sqlite3
import subprocess
import sys
import threading

import pytest

import tokenvault
from conftest import run_cli, unavailable

ANN = {
    "user_name": "ann@example.com",
    "client_id": "1000.CLIENT",
    "client_secret": "client-secret-ann",
    "refresh_token": "1000.refresh.ann",
    "access_token": "1000.access.ann",
    "grant_token": "1000.grant.ann",
    "expiry_time": "1900000000000",
    "redirect_url": "https://app.example.com/cb",
    "api_domain": "https://www.zohoapis.eu",
}


@pytest.mark.parametrize("scheme", ["sqlite", "file", "memory"])
def test_the_six_operations_on_every_embedded_backend(store_dir, key, scheme):
    uri = "memory:" if scheme == "memory" else "%s:%s" % (scheme, store_dir / "tokens")
    store = tokenvault.Store.create(uri, key=key)

    ann_id = store.save_token(dict(ANN))
    bob_id = store.save_token({"user_name": "bob@example.com", "refresh_token": "1000.refresh.bob"})
    assert isinstance(ann_id, str) and ann_id != bob_id

    found = store.find_token({"user_name": "ann@example.com"})
    assert found == dict(ANN, id=ann_id)
    assert store.find_token_by_id(bob_id)["refresh_token"] == "1000.refresh.bob"
    assert store.find_token({"access_token": "1000.access.ann"})["id"] == ann_id
    assert store.find_token({"user_name": "nobody"}) is None
    assert store.find_token_by_id("no-such-id") is None
    assert sorted(t["id"] for t in store.get_tokens()) == sorted([ann_id, bob_id])
    assert set(found) == set(tokenvault.FIELDS)

    store.delete_token(bob_id)
    assert [t["id"] for t in store.get_tokens()] == [ann_id]
    store.delete_tokens()
    assert store.get_tokens() == []


def test_a_save_by_user_name_updates_the_record_and_keeps_what_it_leaves_out(store):
    ann_id = store.save_token(dict(ANN))
    again = store.save_token({"user_name": "ann@example.com", "access_token": "1000.access.new",
                              "expiry_time": 1950000000000})
    assert again == ann_id
    record = store.find_token_by_id(ann_id)
    assert record["access_token"] == "1000.access.new"
    assert record["expiry_time"] == "1950000000000"
    assert record["refresh_token"] == ANN["refresh_token"]
    assert len(store.get_tokens()) == 1


def test_records_are_sealed_on_disk(store, store_dir):
    store.save_token(dict(ANN))
    data = b"".join(p.read_bytes() for p in store_dir.iterdir() if p.is_file())
    for value in ANN.values():
        assert value.encode() not in data, value


def test_reopening_needs_the_key_and_a_wrong_key_changes_nothing(uri, key, store):
    ann_id = store.save_token(dict(ANN))
    with pytest.raises(tokenvault.WrongKey):
        tokenvault.Store.open(uri, key=os.urandom(32))
    assert tokenvault.Store.open(uri, key=key).find_token_by_id(ann_id)["user_name"] == ANN["user_name"]


def test_a_wrong_passphrase_and_a_changed_passphrase(uri):
    store = tokenvault.Store.create(uri, passphrase="first passphrase")
    ann_id = store.save_token(dict(ANN))
    with pytest.raises(tokenvault.WrongKey):
        tokenvault.Store.open(uri, passphrase="not the passphrase")
    store.change_passphrase("second passphrase")
    with pytest.raises(tokenvault.WrongKey):
        tokenvault.Store.open(uri, passphrase="first passphrase")
    reopened = tokenvault.Store.open(uri, passphrase="second passphrase")
    assert reopened.find_token_by_id(ann_id)["refresh_token"] == ANN["refresh_token"]


def test_the_credential_can_come_from_the_environment(uri, key, store, monkeypatch):
    ann_id = store.save_token(dict(ANN))
    monkeypatch.delenv("TOKENVAULT_PASSPHRASE", raising=False)
    monkeypatch.delenv("TOKENVAULT_KEY", raising=False)
    with pytest.raises(tokenvault.CredentialError, match="TOKENVAULT_KEY"):
        tokenvault.Store.open(uri)
    monkeypatch.setenv("TOKENVAULT_KEY", base64.b64encode(key).decode())
    assert tokenvault.Store.open(uri).find_token_by_id(ann_id) is not None


def test_a_passphrase_store_without_a_passphrase_says_how_to_give_one(uri, monkeypatch):
    tokenvault.Store.create(uri, passphrase="a passphrase")
    monkeypatch.delenv("TOKENVAULT_PASSPHRASE", raising=False)
    monkeypatch.delenv("TOKENVAULT_KEY", raising=False)
    with pytest.raises(tokenvault.CredentialError, match="TOKENVAULT_PASSPHRASE"):
        tokenvault.Store.open(uri)


def test_create_refuses_an_existing_store_and_open_a_missing_one(uri, key, store, store_dir):
    with pytest.raises(tokenvault.StoreExists):
        tokenvault.Store.create(uri, key=key)
    with pytest.raises(tokenvault.NoStore):
        tokenvault.Store.open("sqlite:" + str(store_dir / "missing.db"), key=key)
    assert not (store_dir / "missing.db").exists()


def test_conflict_invalid_token_not_found_and_refused(store):
    ann_id = store.save_token(dict(ANN))
    bob_id = store.save_token({"user_name": "bob@example.com", "refresh_token": "1000.r.bob"})
    with pytest.raises(tokenvault.Conflict) as conflict:
        store.save_token({"id": bob_id, "user_name": "ann@example.com"})
    assert ann_id in str(conflict.value)
    with pytest.raises(tokenvault.InvalidToken):
        store.save_token({"user_name": "carol@example.com"})  # no token at all
    with pytest.raises(tokenvault.NotFound):
        store.delete_token("no-such-id")
    with pytest.raises(tokenvault.Refused):
        store.change_passphrase("a raw-key store has no passphrase slot")
    assert store.find_token_by_id(bob_id)["user_name"] == "bob@example.com"


def test_a_tampered_record_is_refused_and_verify_names_it(uri, store, store_dir):
    ann_id = store.save_token(dict(ANN))
    bob_id = store.save_token({"user_name": "bob@example.com", "refresh_token": "1000.r.bob"})
    db = sqlite3.connect(str(store_dir / "tokens.db"))
    sealed = db.execute("SELECT sealed FROM tokenvault_records WHERE id = ?", (ann_id,)).fetchone()[0]
    flipped = sealed[:-5] + bytes([sealed[-5] ^ 1]) + sealed[-4:]
    db.execute("UPDATE tokenvault_records SET sealed = ? WHERE id = ?", (flipped, ann_id))
    db.commit()
    db.close()

    with pytest.raises(tokenvault.Tampered):
        store.find_token_by_id(ann_id)
    report = store.verify()
    assert report["ok"] == 1
    assert [failed_id for failed_id, _ in report["failed"]] == [ann_id]
    assert store.find_token_by_id(bob_id) is not None


def test_an_unsafe_store_file_is_a_backend_error(uri, key, store, store_dir):
    os.chmod(store_dir / "tokens.db", 0o666)
    with pytest.raises(tokenvault.BackendError, match="other users may write"):
        tokenvault.Store.open(uri, key=key)


def test_a_bad_uri_is_refused_without_echoing_a_password(key):
    with pytest.raises(tokenvault.InvalidUri):
        tokenvault.Store.open("/a/bare/path.db", key=key)
    with pytest.raises(tokenvault.Error) as error:
        tokenvault.Store.open("postgres://ann:hunter2@127.0.0.1:1/db?bogus=1", key=key)
    assert "hunter2" not in str(error.value)


def test_every_exception_is_a_tokenvault_error():
    for name in ("WrongKey", "Tampered", "NotFound", "Conflict", "InvalidToken", "StoreExists",
                 "NoStore", "KeychainError", "RefreshError", "BackendError", "Refused",
                 "CredentialError", "InvalidUri"):
        cls = getattr(tokenvault, name)
        assert issubclass(cls, tokenvault.Error) and cls.__module__ == "tokenvault", name


def test_rotate_reseals_every_record_and_they_still_open(uri, key, store):
    ids = [store.save_token({"user_name": "u%d" % i, "refresh_token": "r%d" % i}) for i in range(5)]
    report = store.rotate()
    assert report["resealed"] == 5 and report["resumed"] is False
    reopened = tokenvault.Store.open(uri, key=key)
    assert reopened.verify() == {"ok": 5, "failed": []}
    assert [reopened.find_token_by_id(i)["refresh_token"] for i in ids] == ["r%d" % i for i in range(5)]


def test_eight_threads_saving_make_no_duplicates(store):
    def save_many(thread):
        for i in range(25):
            store.save_token({"user_name": "t%d-%d" % (thread, i), "refresh_token": "r%d-%d" % (thread, i)})
            store.save_token({"user_name": "shared", "access_token": "a%d-%d" % (thread, i)})

    threads = [threading.Thread(target=save_many, args=(t,)) for t in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    tokens = store.get_tokens()
    assert len(tokens) == 8 * 25 + 1
    assert len({t["id"] for t in tokens}) == len(tokens)
    assert sum(1 for t in tokens if t["user_name"] == "shared") == 1


def test_the_interpreter_runs_other_threads_during_the_kdf(uri):
    # Argon2id (64 MiB, t = 3) takes a few hundred ms; if the GIL were held, this thread's
    # loop could not advance meanwhile.
    done = threading.Event()
    thread = threading.Thread(target=lambda: (tokenvault.Store.create(uri, passphrase="p" * 12), done.set()))
    spins = 0
    thread.start()
    while not done.is_set():
        spins += 1
    thread.join()
    assert spins > 100_000, spins


def test_the_interpreter_runs_other_threads_during_a_refresh(store):
    from fake_zoho import FakeZoho

    slow = FakeZoho(refresh_delay=1.0).start()
    try:
        store.save_token({"user_name": "ann", "client_id": "1000.FAKECLIENT",
                          "client_secret": "fake-client-secret-0123456789",
                          "refresh_token": slow.issue_refresh_token("ann"),
                          "access_token": "a", "expiry_time": "1000"})
        done = threading.Event()
        thread = threading.Thread(target=lambda: (store.access_token(user="ann", token_url=slow.token_url),
                                                  done.set()))
        spins = 0
        thread.start()
        while not done.is_set():
            spins += 1
        thread.join()
    finally:
        slow.stop()
    assert slow.stats()["refresh_token"] == 1
    assert spins > 100_000, spins


def test_a_store_is_not_used_across_fork(store):
    store.save_token(dict(ANN))
    pid = os.fork()
    if pid == 0:  # the child: the parent's connection must not be used here
        try:
            store.find_token({"user_name": ANN["user_name"]})
            os._exit(1)
        except tokenvault.Error as error:
            os._exit(0 if "after fork" in str(error) else 2)
        except BaseException:
            os._exit(3)
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0
    assert store.find_token({"user_name": ANN["user_name"]}) is not None


def test_access_token_refreshes_once_for_eight_threads(store, slow_fake):
    store.save_token({"user_name": "ann@example.com", "client_id": "1000.FAKECLIENT",
                      "client_secret": "fake-client-secret-0123456789",
                      "refresh_token": slow_fake.issue_refresh_token("ann@example.com"),
                      "access_token": "1000.access.expired", "expiry_time": "1000"})
    results = []

    def ask():
        results.append(store.access_token(user="ann@example.com", token_url=slow_fake.token_url))

    threads = [threading.Thread(target=ask) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert slow_fake.stats()["refresh_token"] == 1
    assert len(results) == 8 and len(set(results)) == 1 and results[0] != "1000.access.expired"
    assert store.access_token(user="ann@example.com", token_url=slow_fake.token_url) == results[0]
    assert slow_fake.stats()["refresh_token"] == 1


def test_a_refused_refresh_raises_and_keeps_the_record(store, fake):
    ann_id = store.save_token({"user_name": "ann@example.com", "client_id": "1000.FAKECLIENT",
                               "client_secret": "fake-client-secret-0123456789",
                               "refresh_token": "1000.refresh.revoked",
                               "access_token": "1000.access.old", "expiry_time": "1000"})
    with pytest.raises(tokenvault.RefreshError) as error:
        store.access_token(id=ann_id, token_url=fake.token_url)
    assert "invalid_code" in str(error.value)
    assert "1000.refresh.revoked" not in str(error.value)
    assert store.find_token_by_id(ann_id)["access_token"] == "1000.access.old"
    with pytest.raises(tokenvault.NotFound):
        store.access_token(user="nobody@example.com", token_url=fake.token_url)
    with pytest.raises(tokenvault.RefreshError, match="loopback"):
        store.access_token(id=ann_id, token_url="http://accounts.example.com/oauth/v2/token")


def test_a_keychain_that_cannot_be_reached_is_a_keychain_error(store_dir):
    code = ("import tokenvault, sys\n"
            "try:\n"
            "    tokenvault.Store.create(sys.argv[1], keychain=True)\n"
            "except tokenvault.KeychainError as e:\n"
            "    print('KeychainError', e)\n")
    env = dict(os.environ, DBUS_SESSION_BUS_ADDRESS="unix:path=/nonexistent/bus")
    out = subprocess.run([sys.executable, "-c", code, "sqlite:" + str(store_dir / "k.db")],
                         capture_output=True, text=True, env=env, timeout=60, cwd="/")
    assert out.stdout.startswith("KeychainError"), (out.stdout, out.stderr)


def test_the_keychain(uri):
    try:
        store = tokenvault.Store.create(uri, keychain=True)
    except tokenvault.KeychainError as error:
        unavailable("no usable OS keychain (Secret Service): %s" % error)
    ann_id = store.save_token(dict(ANN))
    assert tokenvault.Store.open(uri, keychain=True).find_token_by_id(ann_id)["user_name"] == ANN["user_name"]
    assert tokenvault.Store.open(uri).find_token_by_id(ann_id) is not None  # the slot is found


def test_a_store_made_by_the_cli_opens_here_and_the_reverse(cli, store_dir, key):
    by_cli = "sqlite:" + str(store_dir / "cli.db")
    run_cli(cli, ["init", "--key", "env"], store_uri=by_cli, key=key)
    ids = run_cli(cli, ["save"], store_uri=by_cli, key=key, stdin=json.dumps(ANN)).split()
    store = tokenvault.Store.open(by_cli, key=key)
    assert store.find_token({"user_name": ANN["user_name"]}) == dict(ANN, id=ids[0])

    by_python = "sqlite:" + str(store_dir / "python.db")
    passphrase = "correct horse battery staple"
    ann_id = tokenvault.Store.create(by_python, passphrase=passphrase).save_token(dict(ANN))
    out = run_cli(cli, ["get", "--user", ANN["user_name"]], store_uri=by_python, passphrase=passphrase)
    assert json.loads(out) == dict(ANN, id=ann_id)
