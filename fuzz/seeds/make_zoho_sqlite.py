#!/usr/bin/env python3
"""Writes the zoho_sqlite seeds: small SQLite files with an `oauthtoken` table, as the Zoho
SDKs' DBStore creates it (tests/fixtures/zoho/generate_fixtures.py has the full one).
512-byte pages keep each file at a few pages. Run: python3 fuzz/seeds/make_zoho_sqlite.py"""
import os
import sqlite3

HERE = os.path.join(os.path.dirname(os.path.abspath(__file__)), "zoho_sqlite")
FIELDS = ["id", "user_name", "client_id", "client_secret", "refresh_token", "access_token",
          "grant_token", "expiry_time", "redirect_url", "api_domain"]
DBSTORE_DDL = """CREATE TABLE oauthtoken (
  id varchar(10) NOT NULL, user_name varchar(255), client_id varchar(255),
  client_secret varchar(255), refresh_token varchar(255), access_token varchar(255),
  grant_token varchar(255), expiry_time varchar(20), redirect_url varchar(255),
  api_domain varchar(255), primary key (id))"""


def make(name, ddl, columns, rows):
    path = os.path.join(HERE, name)
    if os.path.exists(path):
        os.remove(path)
    con = sqlite3.connect(path)
    con.execute("PRAGMA page_size = 512")
    with con:
        con.execute(ddl)
        con.executemany("INSERT INTO oauthtoken (%s) VALUES (%s)"
                        % (", ".join(columns), ", ".join("?" * len(columns))), rows)
    con.execute("VACUUM")
    con.close()
    print("%6d bytes  fuzz/seeds/zoho_sqlite/%s" % (os.path.getsize(path), name))


os.makedirs(HERE, exist_ok=True)
make("dbstore.db", DBSTORE_DDL, FIELDS, [
    ("1", "ann@example.com", "1000.ABC", "s3cr,et", "1000.refresh.ann", "1000.access.ann", None,
     "1767225600000", "https://app.example.com/cb", "https://www.zohoapis.com"),
    ("2", None, None, None, None, "1000.access-only", "", None, "", None),
])
# Integer expiry_time, and a table with fewer columns (an older SDK's).
make("integer-expiry.db",
     "CREATE TABLE oauthtoken (id TEXT, user_mail TEXT, refresh_token TEXT, expiry_time INTEGER)",
     ["id", "user_mail", "refresh_token", "expiry_time"],
     [("a", "bob@example.com", "1000.refresh.bob", 1767229200000)])
