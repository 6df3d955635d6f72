/**
 * `TokenvaultStore`: the Zoho CRM Node.js SDK's `TokenStore`, encrypted and race-free.
 *
 *     import { TokenvaultStore } from "tokenvault/zoho";
 *     const store = new TokenvaultStore("sqlite:/var/lib/app/tokens.db", { passphrase });
 *     await (await new InitializeBuilder()).environment(env).token(token).store(store).initialize();
 *
 * A subclass of the installed SDK's own `TokenStore` (npm `@zohocrm/nodejs-sdk-8.0`), so the
 * SDK's `InitializeBuilder.store()` accepts it. It follows what the SDK does with its store:
 *
 * - `findToken(token)` gets the token the SDK is building (user name in its user signature)
 *   and fills the missing fields of *that* object from the record, then returns it, as the
 *   SDK's own FileStore does (the SDK goes on with that object); null when nothing matches.
 * - `findTokenById(id)` returns a new `OAuthToken`, or rejects with `NotFound`, as the SDK's
 *   stores throw for an unknown id. Ids are strings; `expiry_time` is epoch milliseconds,
 *   kept by the SDK as `expiresIn`.
 *
 * When the record found has an access token that the SDK would refresh (it expires within the
 * SDK's own 5000 ms window) or that expires within `skew` seconds beyond it (default 5), the
 * store refreshes it itself under tokenvault's cross-process lock, so the SDK sees a fresh token and N processes make one refresh call (the SDK alone
 * sends one per process, and with a rotating refresh token all but one of them fail). The
 * token endpoint is `tokenUrl` (the full URL the SDK's `Environment` keeps as `accountsUrl`);
 * by default the Zoho accounts server of the record's `api_domain`, else the accounts URL of
 * the SDK's initialized environment.
 */

import { createRequire } from "node:module";

const tokenvault = createRequire(import.meta.url)("./index.js");
const { NotFound, NoStore, Store, StoreExists } = tokenvault;

// OAuthToken.getToken refreshes a token expiring within 5000 ms itself, outside any lock; the
// store must have refreshed such a token first, whatever time passes between the two checks.
const SDK_REFRESH_WINDOW = 5;

const SDK = "@zohocrm/nodejs-sdk-8.0";

let sdk;
try {
  sdk = await import(SDK);
} catch (error) {
  if (error?.code === "ERR_MODULE_NOT_FOUND" && String(error.message).includes(SDK)) {
    throw new Error(
      `tokenvault/zoho needs the Zoho CRM Node.js SDK: npm install ${SDK}`,
      { cause: error },
    );
  }
  throw error;
}

/** A class the SDK exports, directly or (as `TokenStore` is) inside a module namespace. */
function sdkClass(name) {
  const value = sdk[name];
  const cls = typeof value === "function" ? value : value?.[name];
  if (typeof cls !== "function") {
    throw new Error(`tokenvault/zoho: the installed ${SDK} has no ${name} class`);
  }
  return cls;
}

const TokenStore = sdkClass("TokenStore");
const OAuthToken = sdkClass("OAuthToken");
const UserSignature = sdkClass("UserSignature");
const Initializer = sdkClass("Initializer");

// The token fields the SDK's matching looks at (its FileStore.checkCondition), with the
// OAuthToken accessors that hold them.
const QUERY_FIELDS = [
  ["client_id", "getClientId", "setClientId"],
  ["client_secret", "getClientSecret", "setClientSecret"],
  ["refresh_token", "getRefreshToken", "setRefreshToken"],
  ["access_token", "getAccessToken", "setAccessToken"],
  ["grant_token", "getGrantToken", "setGrantToken"],
];
const OTHER_FIELDS = [
  ["redirect_url", "getRedirectURL", "setRedirectURL"],
  ["api_domain", "getAPIDomain", "setAPIDomain"],
];
const OPTIONS = new Set(["passphrase", "key", "keychain", "tokenUrl", "skew"]);

/** An encrypted token store for the Zoho CRM SDK. */
export class TokenvaultStore extends TokenStore {
  #store;
  #tokenUrl;
  #skew;
  #inFlight = new Map();

  /**
   * `uri`: where the store is (`sqlite:PATH`, `file:PATH`, `postgres://…`, `mysql://…`).
   * Options: one credential — `passphrase`, `key` (32 bytes) or `keychain: true` — or none
   * (then TOKENVAULT_KEY / TOKENVAULT_PASSPHRASE or the store's keychain slot);
   * `tokenUrl`, the token endpoint; `skew`, seconds beyond the SDK's own 5 s refresh window
   * at which the store refreshes first (at least 1; default 5: a token expiring within 10 s
   * is refreshed by the store). A store that does not
   * exist yet is created with the credential given. Opening runs in the background: its
   * failure rejects the first call (`await TokenvaultStore.open(…)` reports it at once).
   */
  constructor(uri, options = {}) {
    super();
    if (options === null || typeof options !== "object" || Array.isArray(options)) {
      throw argError("ERR_INVALID_ARG_TYPE", "TokenvaultStore options must be an object");
    }
    for (const name of Object.keys(options)) {
      if (!OPTIONS.has(name)) {
        throw argError(
          "ERR_INVALID_ARG_VALUE",
          `unknown option "${name}" for TokenvaultStore; the options are ${[...OPTIONS].join(", ")}`,
        );
      }
    }
    const { passphrase, key, keychain, tokenUrl, skew = 5 } = options;
    if (tokenUrl != null && typeof tokenUrl !== "string") {
      throw argError("ERR_INVALID_ARG_TYPE", "tokenUrl must be a string");
    }
    if (typeof skew !== "number" || !Number.isFinite(skew) || skew < 1) {
      throw argError("ERR_INVALID_ARG_VALUE", "skew must be a finite number of seconds, 1 or more");
    }
    this.#tokenUrl = tokenUrl ?? undefined;
    this.#skew = SDK_REFRESH_WINDOW + skew;
    const credential = {};
    if (passphrase != null) credential.passphrase = passphrase;
    // Our own copy, read by the open (and a create) that run later, then zeroed: the caller
    // may zero its key as soon as the constructor returns.
    if (key != null) credential.key = ArrayBuffer.isView(key) ? Uint8Array.from(key) : key;
    if (keychain != null) credential.keychain = keychain;
    this.#store = openOrCreate(uri, credential).finally(() => {
      if (credential.key instanceof Uint8Array) credential.key.fill(0);
    });
    // Not an unhandled rejection: every call awaits this promise and reports its failure.
    this.#store.catch(() => {});
  }

  /** A `TokenvaultStore` whose store is open (or whose opening failure is thrown here). */
  static async open(uri, options) {
    const store = new TokenvaultStore(uri, options);
    await store.#store;
    return store;
  }

  /** The underlying `tokenvault.Store` (plain-object API, `verify`, `rotate`, …). */
  store() {
    return this.#store;
  }

  async findToken(token) {
    if (!(token instanceof OAuthToken)) {
      return token;
    }
    const query = queryOf(token);
    const found = await this.#findFresh(query.user_name, query);
    if (found === null) {
      return null;
    }
    fill(token, found.token, found.refreshed);
    return token;
  }

  async saveToken(token) {
    if (!(token instanceof OAuthToken)) {
      return token;
    }
    const store = await this.#store;
    token.setId(await store.saveToken(recordOf(token)));
  }

  async deleteToken(id) {
    const store = await this.#store;
    await store.deleteToken(idText(id));
  }

  async getTokens() {
    const store = await this.#store;
    return (await store.getTokens()).map(newToken);
  }

  async deleteTokens() {
    const store = await this.#store;
    await store.deleteTokens();
  }

  async findTokenById(id) {
    const text = idText(id);
    const found = await this.#findFresh(typeof text === "string" ? `id ${text}` : undefined, { id: text });
    if (found === null) {
      throw new NotFound(`no token with id ${JSON.stringify(text)}`);
    }
    return newToken(found.token);
  }

  /**
   * `_findFreshToken`, shared by the calls of this process that ask for the same user (or id)
   * at the same time: one of the addon's worker threads, not one per SDK request, waits for a
   * refresh (and for another process's refresh lock), so the others stay free.
   */
  async #findFresh(key, query) {
    const store = await this.#store;
    const options = { tokenUrl: this.#tokenUrl, fallbackTokenUrl: await sdkAccountsUrl(), skew: this.#skew };
    if (key === undefined) {
      return store._findFreshToken(query, options);
    }
    let pending = this.#inFlight.get(key);
    if (pending === undefined) {
      pending = store._findFreshToken(query, options).finally(() => this.#inFlight.delete(key));
      this.#inFlight.set(key, pending);
    }
    const found = await pending;
    // Each caller fills its own token from its own copy.
    return found === null ? null : { token: { ...found.token }, refreshed: found.refreshed };
  }
}

async function openOrCreate(uri, credential) {
  const given = Object.keys(credential).length > 0;
  try {
    return await Store.open(uri, given ? credential : undefined);
  } catch (error) {
    if (!(error instanceof NoStore) || !given) {
      throw error;
    }
  }
  try {
    return await Store.create(uri, credential);
  } catch (error) {
    if (error instanceof StoreExists) {
      return Store.open(uri, credential); // another process created it first
    }
    throw error;
  }
}

/** A field's value from the SDK's token: missing for null, undefined and "". */
function present(value) {
  return value !== null && value !== undefined && value !== "";
}

function idText(id) {
  if (typeof id === "number" && Number.isSafeInteger(id)) {
    return String(id); // the SDK's FileStore ids are numbers in text; accept either
  }
  return id; // anything else is checked (and refused with a TypeError) by the store
}

function userName(token) {
  const signature = token.getUserSignature();
  return signature == null ? undefined : signature.getName();
}

function queryOf(token) {
  const query = {};
  for (const [field, get] of QUERY_FIELDS) {
    const value = token[get]();
    if (present(value)) query[field] = value;
  }
  const name = userName(token);
  if (present(name)) query.user_name = name;
  return query;
}

function recordOf(token) {
  const record = queryOf(token);
  const id = token.getId();
  if (present(id)) record.id = idText(id);
  const expiry = token.getExpiresIn();
  if (present(expiry)) record.expiry_time = expiry;
  for (const [field, get] of OTHER_FIELDS) {
    const value = token[get]();
    if (present(value)) record[field] = value;
  }
  return record;
}

/**
 * Sets the fields `token` lacks from `record` (the SDK stores' merge). After a refresh the
 * record's access token, expiry and (rotated) refresh token replace the token's own: the
 * ones it carried are spent.
 */
function fill(token, record, refreshed) {
  if (!present(token.getId())) token.setId(record.id);
  if (token.getUserSignature() == null && record.user_name !== null) {
    token.setUserSignature(new UserSignature(record.user_name));
  }
  for (const [field, get, set] of [...QUERY_FIELDS, ...OTHER_FIELDS]) {
    if (!present(token[get]()) && record[field] !== null) token[set](record[field]);
  }
  if (!present(token.getExpiresIn()) && record.expiry_time !== null) {
    token.setExpiresIn(record.expiry_time);
  }
  if (refreshed) {
    token.setAccessToken(record.access_token);
    token.setExpiresIn(record.expiry_time);
    if (record.refresh_token !== null) token.setRefreshToken(record.refresh_token);
  }
}

function newToken(record) {
  const token = new OAuthToken();
  fill(token, record, false);
  return token;
}

/** The token endpoint of the SDK's initialized environment, if any. */
async function sdkAccountsUrl() {
  try {
    const initializer = await Initializer.getInitializer();
    const url = initializer?.getEnvironment?.()?.getAccountsUrl?.();
    return typeof url === "string" && url.length > 0 ? url : undefined;
  } catch {
    return undefined; // no initialized SDK: the record's api_domain or tokenUrl decides
  }
}

function argError(code, message) {
  const error = new TypeError(message);
  error.code = code;
  return error;
}
