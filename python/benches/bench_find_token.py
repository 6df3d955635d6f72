"""find_token and save_token on 4,000 tokens: tokenvault.zoho.TokenvaultStore against the Zoho
Python SDK's own FileStore and the article's CustomStoreSQLite pattern, measured in one run.

    python benches/bench_find_token.py [--tokens 4000] [--seconds 2]

The baselines:
* FileStore (zohocrmsdk8-0): a plaintext CSV, read whole on every find, rewritten whole on
  every save (no fsync).
* CustomStoreSQLite: the pattern of Zoho's custom-store article, a plaintext sqlite3 table and
  a new connection per call (here with bound parameters instead of the article's string
  concatenation; the cost is the same). Saves commit with synchronous=FULL.
TokenvaultStore: SQLite, raw key; every record sealed with AES-256-GCM, saves durable
(synchronous=FULL), finds by blind index.
"""

import argparse
import csv
import os
import random
import sqlite3
import tempfile
import time

from zohocrmsdk.src.com.zoho.api.authenticator.oauth_token import OAuthToken
from zohocrmsdk.src.com.zoho.api.authenticator.store.file_store import FileStore
from zohocrmsdk.src.com.zoho.api.authenticator.store.token_store import TokenStore
from zohocrmsdk.src.com.zoho.crm.api.user_signature import UserSignature

from tokenvault.zoho import TokenvaultStore

COLUMNS = ["id", "user_name", "client_id", "client_secret", "refresh_token", "access_token",
           "grant_token", "expiry_time", "redirect_url", "api_domain"]


def record(i):
    return {"id": str(i + 1), "user_name": "user%d@example.com:700000001" % i,
            "client_id": "1000.CLIENT", "client_secret": "secret-%032x" % i,
            "refresh_token": "1000.refresh.%032x" % i, "access_token": "1000.access.%032x" % i,
            "grant_token": "", "expiry_time": str(1900000000000 + i),
            "redirect_url": "https://app.example.com/cb", "api_domain": "https://www.zohoapis.com"}


class CustomStoreSQLite(TokenStore):
    """The article's store: plaintext SQLite, one new connection per call."""

    def __init__(self, path):
        self.path = path
        with self.connect() as db:
            db.execute("CREATE TABLE IF NOT EXISTS oauthtoken (id TEXT PRIMARY KEY, user_name TEXT, "
                       "client_id TEXT, client_secret TEXT, refresh_token TEXT, access_token TEXT, "
                       "grant_token TEXT, expiry_time TEXT, redirect_url TEXT, api_domain TEXT)")

    def connect(self):
        db = sqlite3.connect(self.path)
        db.execute("PRAGMA synchronous=FULL")
        return db

    def find_token(self, token):
        db = self.connect()
        try:
            row = db.execute("SELECT * FROM oauthtoken WHERE user_name = ?",
                             (token.get_user_signature().get_name(),)).fetchone()
        finally:
            db.close()
        if row is None:
            return None
        values = dict(zip(COLUMNS, row))
        token.set_id(values["id"])
        for field in ("client_id", "client_secret", "refresh_token", "access_token", "grant_token",
                      "redirect_url", "api_domain"):
            if getattr(token, "get_" + field)() is None and values[field]:
                getattr(token, "set_" + field)(values[field])
        token.set_expires_in(values["expiry_time"])
        return token

    def save_token(self, token):
        db = self.connect()
        try:
            with db:
                db.execute("UPDATE oauthtoken SET access_token = ?, expiry_time = ? WHERE id = ?",
                           (token.get_access_token(), token.get_expires_in(), token.get_id()))
        finally:
            db.close()

    def delete_token(self, id):
        raise NotImplementedError

    def get_tokens(self):
        raise NotImplementedError

    def delete_tokens(self):
        raise NotImplementedError

    def find_token_by_id(self, id):
        raise NotImplementedError


def fill(directory, count):
    records = [record(i) for i in range(count)]
    csv_path = os.path.join(directory, "filestore.csv")
    with open(csv_path, "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(FileStore(os.path.join(directory, "header.csv")).headers)
        writer.writerows([[r[c] for c in COLUMNS] for r in records])
    file_store = FileStore(csv_path)

    custom = CustomStoreSQLite(os.path.join(directory, "custom.db"))
    with custom.connect() as db:
        db.executemany("INSERT INTO oauthtoken VALUES (?,?,?,?,?,?,?,?,?,?)",
                       [[r[c] for c in COLUMNS] for r in records])

    vault = TokenvaultStore("sqlite:" + os.path.join(directory, "vault", "tokens.db"), key=os.urandom(32))
    vault_ids = []
    for r in records:
        vault_ids.append(vault.store.save_token({k: v for k, v in r.items() if k != "id" and v}))
    return records, {"FileStore (SDK)": (file_store, None), "CustomStoreSQLite": (custom, None),
                     "TokenvaultStore": (vault, vault_ids)}


def per_call(action, seconds):
    """Mean seconds per call of `action(i)` over at least `seconds` (and 20 calls)."""
    calls, start = 0, time.perf_counter()
    while True:
        action(calls)
        calls += 1
        elapsed = time.perf_counter() - start
        if elapsed >= seconds and calls >= 20:
            return elapsed / calls


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--tokens", type=int, default=4000)
    parser.add_argument("--seconds", type=float, default=2.0)
    args = parser.parse_args()
    rng = random.Random(7)
    with tempfile.TemporaryDirectory() as directory:
        records, stores = fill(directory, args.tokens)
        users = [records[rng.randrange(len(records))]["user_name"] for _ in range(100_000)]
        picks = [rng.randrange(len(records)) for _ in range(100_000)]
        rows = []
        for name, (store, ids) in stores.items():
            def find(i):
                token = OAuthToken(user_signature=UserSignature(users[i % len(users)]))
                assert store.find_token(token) is token and token.get_access_token()

            def save(i):
                n = picks[i % len(picks)]
                token = OAuthToken(id=ids[n] if ids else records[n]["id"])
                token.set_access_token("1000.access.new.%d" % i)
                token.set_expires_in(str(1950000000000 + i))
                store.save_token(token)

            rows.append((name, per_call(find, args.seconds), per_call(save, args.seconds)))

    base_find, base_save = rows[0][1], rows[0][2]
    custom_find = rows[1][1]
    print("%d tokens, mean per call (%.1f s or more each)" % (args.tokens, args.seconds))
    print("| store | find_token by user | vs FileStore | vs CustomStoreSQLite | save_token | vs FileStore |")
    print("|---|---:|---:|---:|---:|---:|")
    for name, find_s, save_s in rows:
        print("| %s | %.1f µs | %.1f× | %.1f× | %.1f µs | %.2f× |" % (
            name, find_s * 1e6, base_find / find_s, custom_find / find_s, save_s * 1e6, base_save / save_s))


if __name__ == "__main__":
    main()
