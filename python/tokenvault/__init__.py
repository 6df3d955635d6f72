"""tokenvault: an encrypted, race-free OAuth token store.

Every record is sealed with AES-256-GCM under a key from a passphrase (Argon2id), the OS
keychain or a raw key; the store lives in SQLite (``sqlite:PATH``), a file (``file:PATH``),
memory (``memory:``), PostgreSQL or MySQL (``postgres://…``, ``mysql://…``)::

    import tokenvault
    store = tokenvault.Store.create("sqlite:/tmp/tokens.db", key=os.urandom(32))
    store.save_token({"user_name": "ann@example.com", "refresh_token": "1000.r", ...})
    token = store.access_token(user="ann@example.com")   # refreshed once for all processes

``tokenvault.zoho.TokenvaultStore`` is a drop-in ``TokenStore`` for the Zoho CRM Python SDK.

What Python cannot promise: the library keeps secrets in memory that is zeroed when freed,
but a secret that crosses into Python (a passphrase you pass, a token you read) is a ``str``
that Python never zeroes; keep such values short-lived.
"""

from . import _native
from ._native import (
    BackendError,
    Conflict,
    CredentialError,
    Error,
    InvalidToken,
    InvalidUri,
    KeychainError,
    NoStore,
    NotFound,
    RefreshError,
    Refused,
    Store,
    StoreExists,
    Tampered,
    WrongKey,
    zoho_token_url,
)

FIELDS = tuple(_native.FIELDS)
"""The ten fields of a token record, with the Zoho SDKs' names."""

__all__ = [
    "FIELDS",
    "BackendError",
    "Conflict",
    "CredentialError",
    "Error",
    "InvalidToken",
    "InvalidUri",
    "KeychainError",
    "NoStore",
    "NotFound",
    "RefreshError",
    "Refused",
    "Store",
    "StoreExists",
    "Tampered",
    "WrongKey",
    "zoho_token_url",
]
