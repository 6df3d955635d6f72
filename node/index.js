"use strict";
/**
 * tokenvault: an encrypted, race-free OAuth token store.
 *
 * Every record is sealed with AES-256-GCM under a key from a passphrase (Argon2id), the OS
 * keychain or a raw 32-byte key; the store lives in SQLite (`sqlite:PATH`), a file
 * (`file:PATH`), memory (`memory:`), PostgreSQL or MySQL (`postgres://…`, `mysql://…`).
 *
 *     const { Store } = require("tokenvault");
 *     const store = await Store.create("sqlite:/tmp/tokens.db", { key: crypto.randomBytes(32) });
 *     await store.saveToken({ user_name: "ann@example.com", refresh_token: "1000.r", ... });
 *     const access = await store.accessToken({ user: "ann@example.com" }); // one refresh for all
 *
 * Every call that touches the store returns a Promise and runs off the event loop.
 * `tokenvault/zoho` is a drop-in `TokenStore` for the Zoho CRM Node.js SDK.
 *
 * What JavaScript cannot promise: the library keeps secrets in memory that is zeroed when
 * freed, but a secret that crosses into JavaScript (a passphrase you pass, a token you read)
 * is a JS string, which is immutable and never zeroed; keep such values short-lived.
 */

const fs = require("node:fs");
const path = require("node:path");
const { inspect } = require("node:util");

const native = loadNative();

/** The ten fields of a token record, with the Zoho SDKs' names. */
const FIELDS = Object.freeze(native.fields());

/** Base class of every tokenvault error; `code` names the class. */
class TokenvaultError extends Error {
  get name() {
    return this.constructor.name;
  }

  get code() {
    return this.constructor.name;
  }
}

/** The passphrase or key opens none of the store's key slots (nothing was changed). */
class WrongKey extends TokenvaultError {}
/** Stored bytes failed their integrity check: altered, truncated, or moved from elsewhere. */
class Tampered extends TokenvaultError {}
/** No token has this id or matches the query. */
class NotFound extends TokenvaultError {}
/** Another record already has this user name or token. */
class Conflict extends TokenvaultError {}
/** The token cannot be stored as it is (unknown field, oversized or malformed value). */
class InvalidToken extends TokenvaultError {}
/** create() found a store already there. */
class StoreExists extends TokenvaultError {}
/** open() found no store there. */
class NoStore extends TokenvaultError {}
/** The OS keychain could not give or keep the store's key. */
class KeychainError extends TokenvaultError {}
/** The token endpoint failed or refused the refresh; the stored token is unchanged. */
class RefreshError extends TokenvaultError {}
/** The storage backend failed (I/O, busy, unsafe file, database error). */
class BackendError extends TokenvaultError {}
/** A key-management request that cannot be honoured (e.g. removing the last key slot). */
class Refused extends TokenvaultError {}
/** No usable credential was given (or found in TOKENVAULT_KEY / TOKENVAULT_PASSPHRASE). */
class CredentialError extends TokenvaultError {}
/** The store URI does not parse. */
class InvalidUri extends TokenvaultError {}

const ERROR_CLASSES = new Map(
  [
    TokenvaultError,
    WrongKey,
    Tampered,
    NotFound,
    Conflict,
    InvalidToken,
    StoreExists,
    NoStore,
    KeychainError,
    RefreshError,
    BackendError,
    Refused,
    CredentialError,
    InvalidUri,
  ].map((cls) => [cls.name, cls]),
);

/** The addon's error as an instance of its class (argument TypeErrors pass through). */
function convertError(error) {
  const cls =
    error instanceof Error && !(error instanceof TokenvaultError) && typeof error.code === "string"
      ? ERROR_CLASSES.get(error.code)
      : undefined;
  return cls === undefined ? error : new cls(error.message);
}

/**
 * While a call is in flight, the event loop polls (through `setImmediate`) instead of sleeping
 * until the call's completion wakes it: a store lookup takes ~10 µs on a worker thread, and
 * waking a sleeping event loop costs more than that (~15 µs a call on the 2-core bench
 * machine). Nothing waits: every other callback runs as it would. The polling stops when no
 * call or more than one is in flight, or POLL_WINDOW_MS after the newest call began, so a
 * long call (a key derivation, a refresh over the network) lets the loop sleep.
 */
const POLL_WINDOW_MS = 1;
let inFlight = 0;
let pollUntil = 0;
let polling = false;

function poll() {
  // Only for a call alone: with several in flight, completions keep the loop awake anyway,
  // and the worker threads need the cores.
  if (inFlight === 1 && performance.now() < pollUntil) {
    setImmediate(poll);
  } else {
    polling = false;
  }
}

/**
 * Awaits a call into the addon, giving its errors their classes; `convert`, if given, turns
 * the addon's value into the one the caller gets.
 */
async function call(invoke, convert) {
  inFlight++;
  pollUntil = performance.now() + POLL_WINDOW_MS;
  if (!polling && inFlight === 1) {
    polling = true;
    setImmediate(poll);
  }
  try {
    const value = await invoke();
    return convert === undefined ? value : convert(value);
  } catch (error) {
    throw convertError(error);
  } finally {
    inFlight--;
  }
}

/** A token from the addon's ten values (in FIELDS order), or null. */
function tokenOf(values) {
  if (values === null) return null;
  const token = {};
  for (let i = 0; i < FIELDS.length; i++) token[FIELDS[i]] = values[i];
  return token;
}

/** `_findFreshToken`'s value: the ten values, then whether the record was refreshed. */
function freshOf(values) {
  return values === null ? null : { token: tokenOf(values), refreshed: values[FIELDS.length] };
}

/**
 * A copy of `value`'s own enumerable properties on an object without a prototype, so that
 * nothing inherited (a polluted `Object.prototype.tokenUrl`, say) is ever read as a token
 * field or an option. Anything but a plain object passes through for the addon to refuse.
 */
function own(value) {
  if (value === null || typeof value !== "object" || Array.isArray(value) || ArrayBuffer.isView(value)) {
    return value;
  }
  const copy = Object.create(null);
  for (const key of Object.keys(value)) copy[key] = value[key];
  return copy;
}

/**
 * Calls `invoke` with a prototype-free copy of `credential` whose `key`, if a Uint8Array, is
 * our own copy, zeroed once the addon has read it (synchronously, on this thread): the
 * caller's array may be backed by a SharedArrayBuffer that another thread writes meanwhile.
 */
function withCredential(credential, invoke) {
  const arg = own(credential);
  const copied = arg != null && arg.key instanceof Uint8Array;
  if (copied) arg.key = Uint8Array.from(arg.key);
  try {
    return invoke(arg);
  } finally {
    if (copied) arg.key.fill(0);
  }
}

const CONSTRUCT = Symbol("tokenvault.Store");

/**
 * An open token store. Make one with `Store.create` or `Store.open`; share it freely between
 * concurrent Promises (each call runs on the addon's worker threads). Open it again in each worker
 * thread or process.
 */
class Store {
  #native;

  /** @private Use `Store.create` or `Store.open`. */
  constructor(handle, construct) {
    if (construct !== CONSTRUCT) {
      throw new TypeError("use Store.create(uri, credential) or Store.open(uri, credential)");
    }
    this.#native = handle;
  }

  /**
   * Creates a store at `uri` with exactly one credential as its first key slot:
   * `{ passphrase }`, `{ key }` (32 bytes) or `{ keychain: true }`.
   */
  static async create(uri, credential) {
    return new Store(await call(() => withCredential(credential, (c) => native.createStore(uri, c))), CONSTRUCT);
  }

  /**
   * Opens the store at `uri` with the credential given, or else (none given) the one the
   * environment names: TOKENVAULT_KEY, TOKENVAULT_PASSPHRASE, or the store's keychain slot.
   */
  static async open(uri, credential) {
    return new Store(await call(() => withCredential(credential, (c) => native.openStore(uri, c))), CONSTRUCT);
  }

  /** The store's id (random, hex): names it in key slots and the keychain. */
  get storeId() {
    return this.#native.storeId;
  }

  /**
   * The record `query` matches (the Zoho rules: user name, else access token, else grant or
   * refresh token with the client id and secret), merged into the query, or null.
   */
  findToken(query) {
    return call(() => this.#native.findToken(own(query)), tokenOf);
  }

  /** Saves `token` (merged into the record it matches, else inserted); resolves to its id. */
  saveToken(token) {
    return call(() => this.#native.saveToken(own(token)));
  }

  /** Deletes the record with this id (NotFound if there is none). */
  deleteToken(id) {
    return call(() => this.#native.deleteToken(id));
  }

  /** Every record, in id order. */
  getTokens() {
    return call(() => this.#native.getTokens(), (all) => all.map(tokenOf));
  }

  /** Deletes every record. */
  deleteTokens() {
    return call(() => this.#native.deleteTokens());
  }

  /** The record with this id, or null. */
  findTokenById(id) {
    return call(() => this.#native.findTokenById(id), tokenOf);
  }

  /**
   * A valid access token for the record named by `user` or `id`, refreshed through the OAuth
   * refresh grant when it expires within `skew` seconds (default 60) — once for every
   * Promise, thread and process that asks at the same time. `tokenUrl`: the full token
   * endpoint (default: the Zoho accounts server of the record's api_domain).
   */
  accessToken(options) {
    return call(() => this.#native.accessToken(own(options)));
  }

  /** Opens every record; resolves to `{ ok, failed: [{ id, message }] }`. */
  verify() {
    return call(() => this.#native.verify());
  }

  /** Re-seals every record under a new data key (resumable): `{ keyId, resealed, resumed }`. */
  rotate() {
    return call(() => this.#native.rotate());
  }

  /** Replaces the passphrase of the store's passphrase slot. */
  changePassphrase(passphrase) {
    return call(() => this.#native.changePassphrase(passphrase));
  }

  /**
   * The record `query` names (by id if it has one, else by the matching rules), refreshed
   * under the store's cross-process lock when its access token expires within `skew`
   * seconds (default 5) and it has a refresh token; `{ token, refreshed }` or null. The token
   * endpoint: `tokenUrl`, else the Zoho accounts server of the record's api_domain, else
   * `fallbackTokenUrl`. Used by `tokenvault/zoho`.
   */
  _findFreshToken(query, options) {
    return call(() => this.#native.findFreshToken(own(query), own(options)), freshOf);
  }

  [inspect.custom]() {
    return `Store { storeId: '${this.storeId}' }`;
  }
}

/**
 * The Zoho accounts server's token endpoint for an API domain (e.g. "https://www.zohoapis.eu"
 * → "https://accounts.zoho.eu/oauth/v2/token"), or null for a domain that is not Zoho's.
 */
function zohoTokenUrl(apiDomain) {
  if (typeof apiDomain !== "string") {
    const error = new TypeError(`apiDomain must be a string, not ${describe(apiDomain)}`);
    error.code = "ERR_INVALID_ARG_TYPE";
    throw error;
  }
  return native.zohoTokenUrl(apiDomain);
}

function describe(value) {
  if (value === null) return "null";
  if (Array.isArray(value)) return "an array";
  return typeof value;
}

/** The addon built for this platform (`npm run build` puts it beside this file). */
function loadNative() {
  const names = platformNames().map((p) => `tokenvault.${p}.node`);
  const file = names.map((n) => path.join(__dirname, n)).find((f) => fs.existsSync(f));
  if (file === undefined) {
    throw new Error(
      `tokenvault: the native addon (${names.join(" or ")}) is missing; ` +
        `build it with \`npm run build\` in ${__dirname}`,
    );
  }
  return require(file);
}

/** napi-rs's platform names for this process: e.g. linux-x64-gnu, darwin-arm64. */
function platformNames() {
  const { platform, arch } = process;
  if (platform === "linux") return [`linux-${arch}-gnu`, `linux-${arch}-musl`];
  if (platform === "win32") return [`win32-${arch}-msvc`];
  return [`${platform}-${arch}`];
}

module.exports = {
  FIELDS,
  Store,
  zohoTokenUrl,
  ...Object.fromEntries(ERROR_CLASSES),
};
