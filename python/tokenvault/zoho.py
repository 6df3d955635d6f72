"""``TokenvaultStore``: the Zoho CRM Python SDK's ``TokenStore``, encrypted and race-free.

A subclass of the installed SDK's own abstract ``TokenStore`` (PyPI ``zohocrmsdk8-0``), to
pass to ``Initializer.initialize(..., store=TokenvaultStore(...))``. It follows what the SDK
does with its store:

* ``find_token`` gets the token the SDK is building (user name in ``user_signature``) and
  fills the missing fields of *that* object from the record, then returns it: the SDK keeps
  private state on it (a fresh object would make it skip ``save_token`` silently).
* ``find_token_by_id`` returns a new token, or raises ``tokenvault.NotFound``, as the SDK's
  own stores raise for an unknown id.
* ``expiry_time`` is epoch milliseconds, kept by the SDK as ``expires_in``.

When the record found has an access token that the SDK would refresh (it expires within the
SDK's own 5-second window) or that expires within ``skew`` seconds beyond it, the store
refreshes it itself, under tokenvault's cross-process lock, so the SDK sees a fresh token and
N processes make one refresh call (the SDK alone sends one per process: N requests where one
would do, against a server that limits how many access tokens a refresh token may mint in a
short time, as Zoho does; with a server that rotates refresh tokens, all but one fail).
The token endpoint is ``token_url`` (what the SDK's ``DataCenter.Environment`` keeps as
``accounts_url``); by default the Zoho accounts server of the record's ``api_domain``, else
the ``accounts_url`` of the SDK's initialized environment.
"""

try:
    from zohocrmsdk.src.com.zoho.api.authenticator.oauth_token import OAuthToken
    from zohocrmsdk.src.com.zoho.api.authenticator.store.token_store import TokenStore
    from zohocrmsdk.src.com.zoho.crm.api.initializer import Initializer
    from zohocrmsdk.src.com.zoho.crm.api.user_signature import UserSignature
except ImportError as error:  # pragma: no cover - exercised by a subprocess test
    raise ImportError(
        "tokenvault.zoho needs the Zoho CRM Python SDK: pip install zohocrmsdk8-0 "
        "(or pip install 'tokenvault[zoho]')"
    ) from error

from . import NotFound, NoStore, Store, StoreExists

__all__ = ["TokenvaultStore"]

# The token fields the SDK's matching looks at (its FileStore.check_condition).
_QUERY_FIELDS = ("client_id", "client_secret", "refresh_token", "access_token", "grant_token")

# OAuthToken.get_token refreshes a token expiring within 5000 ms itself, outside any lock; the
# store must have refreshed such a token first, whatever time passes between the two checks.
_SDK_REFRESH_WINDOW = 5.0


class TokenvaultStore(TokenStore):
    """An encrypted token store for the Zoho CRM SDK.

    ``uri``: where the store is (``sqlite:PATH``, ``file:PATH``, ``postgres://…``,
    ``mysql://…``). One credential: ``passphrase``, ``key`` (32 bytes) or ``keychain=True``;
    none: taken from TOKENVAULT_KEY / TOKENVAULT_PASSPHRASE or the store's keychain slot.
    A store that does not exist yet is created with the credential given.

    ``token_url``: the full token endpoint (the SDK environment's ``accounts_url``).
    ``skew``: seconds beyond the SDK's own 5-second refresh window at which the store refreshes
    first (1 or more; default 5: a token expiring within 10 s is refreshed by the store).
    """

    def __init__(self, uri, *, passphrase=None, key=None, keychain=False, token_url=None,
                 skew=5):
        credential = {"passphrase": passphrase, "key": key, "keychain": keychain}
        self._store = _open_or_create(uri, credential)
        self._token_url = token_url
        if not isinstance(skew, (int, float)) or not skew >= 1 or skew == float("inf"):
            raise ValueError("skew must be a finite number of seconds, 1 or more")
        self._skew = _SDK_REFRESH_WINDOW + float(skew)

    @property
    def store(self):
        """The underlying ``tokenvault.Store`` (dict API, ``verify``, ``rotate``, …)."""
        return self._store

    def find_token(self, token):
        """Fills `token` (the SDK's, matched by user name, access token, or grant / refresh
        token with the client) from its record, refreshed first if due; returns `token`, or
        None if no record matches."""
        if not isinstance(token, OAuthToken):
            return token
        found = self._store._find_fresh_token(
            _query_of(token),
            token_url=self._token_url,
            fallback_token_url=_sdk_accounts_url(),
            skew=self._skew,
        )
        if found is None:
            return None
        _fill(token, *found)
        return token

    def save_token(self, token):
        """Saves `token` (merged into the record it matches, else inserted) and sets its id."""
        if not isinstance(token, OAuthToken):
            return
        token.set_id(self._store.save_token(_record_of(token)))

    def delete_token(self, id):
        """Deletes the record `id` (tokenvault.NotFound if there is none)."""
        self._store.delete_token(id)

    def get_tokens(self):
        """Every record, as the SDK's OAuthToken objects."""
        return [_new_token(record) for record in self._store.get_tokens()]

    def delete_tokens(self):
        """Deletes every record."""
        self._store.delete_tokens()

    def find_token_by_id(self, id):
        """The record `id` as a new OAuthToken, refreshed first if due; tokenvault.NotFound if
        there is none (the SDK's own stores raise too)."""
        found = self._store._find_fresh_token(
            id=id,
            token_url=self._token_url,
            fallback_token_url=_sdk_accounts_url(),
            skew=self._skew,
        )
        if found is None:
            raise NotFound("no token with id %r" % (id,))
        token = OAuthToken(id=found[0]["id"])
        _fill(token, *found)
        return token


def _open_or_create(uri, credential):
    try:
        return Store.open(uri, **credential)
    except NoStore:
        if not (credential["passphrase"] or credential["key"] or credential["keychain"]):
            raise
    try:
        return Store.create(uri, **credential)
    except StoreExists:  # another process created it first
        return Store.open(uri, **credential)


def _user_name(token):
    signature = token.get_user_signature()
    return signature.get_name() if signature is not None else None


def _query_of(token):
    query = {field: getattr(token, "get_" + field)() for field in _QUERY_FIELDS}
    query["user_name"] = _user_name(token)
    return query


def _record_of(token):
    record = _query_of(token)
    record.update(
        id=token.get_id(),
        expiry_time=token.get_expires_in(),
        redirect_url=token.get_redirect_url(),
        api_domain=token.get_api_domain(),
    )
    return {field: value for field, value in record.items() if value not in (None, "")}


def _fill(token, record, refreshed=False):
    """Sets the fields `token` lacks from `record` (the SDK stores' merge); after a refresh by
    the store, the new access token, its expiry and a rotated refresh token replace the
    token's own."""
    if refreshed:
        token.set_access_token(record["access_token"])
        token.set_expires_in(record["expiry_time"])
        if record["refresh_token"] is not None:
            token.set_refresh_token(record["refresh_token"])
    if token.get_id() is None:
        token.set_id(record["id"])
    if token.get_user_signature() is None and record["user_name"] is not None:
        token.set_user_signature(UserSignature(record["user_name"]))
    for field in _QUERY_FIELDS + ("redirect_url", "api_domain"):
        if getattr(token, "get_" + field)() is None and record[field] is not None:
            getattr(token, "set_" + field)(record[field])
    if token.get_expires_in() is None and record["expiry_time"] is not None:
        token.set_expires_in(record["expiry_time"])


def _new_token(record):
    token = OAuthToken(id=record["id"])
    _fill(token, record)
    return token


def _sdk_accounts_url():
    """The token endpoint of the SDK's initialized environment, if any."""
    initializer = Initializer.get_initializer()
    environment = getattr(initializer, "environment", None)
    return getattr(environment, "accounts_url", None)
