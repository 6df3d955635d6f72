// Type declarations of the `tokenvault` package (index.js). Hand-written: index.js wraps the
// native addon, whose own generated declarations are native.d.ts (`npm run build:napi`).

/** The ten fields of a token record, with the Zoho SDKs' names. */
export type TokenField =
  | "id"
  | "user_name"
  | "client_id"
  | "client_secret"
  | "refresh_token"
  | "access_token"
  | "grant_token"
  | "expiry_time"
  | "redirect_url"
  | "api_domain";

/** The field names, in the Zoho SDKs' column order. */
export declare const FIELDS: readonly TokenField[];

/**
 * A token going in: any of the ten fields; `null` or `undefined` leaves a field out.
 * `expiry_time` is epoch milliseconds, as a digit string or a safe integer.
 */
export interface TokenInput {
  id?: string | null;
  user_name?: string | null;
  client_id?: string | null;
  client_secret?: string | null;
  refresh_token?: string | null;
  access_token?: string | null;
  grant_token?: string | null;
  expiry_time?: string | number | null;
  redirect_url?: string | null;
  api_domain?: string | null;
}

/** A token coming out: all ten fields, `null` for an unset one; `expiry_time` a digit string. */
export interface Token {
  id: string | null;
  user_name: string | null;
  client_id: string | null;
  client_secret: string | null;
  refresh_token: string | null;
  access_token: string | null;
  grant_token: string | null;
  expiry_time: string | null;
  redirect_url: string | null;
  api_domain: string | null;
}

/** Exactly one credential: a passphrase, a 32-byte raw key, or the OS keychain. */
export type Credential =
  | { passphrase: string; key?: undefined; keychain?: false }
  | { key: Uint8Array; passphrase?: undefined; keychain?: false }
  | { keychain: true; passphrase?: undefined; key?: undefined };

export interface AccessTokenOptions {
  /** The record's user name (give this or `id`). */
  user?: string;
  /** The record's id (give this or `user`). */
  id?: string;
  /** The full token endpoint; default: the Zoho accounts server of the record's api_domain. */
  tokenUrl?: string;
  /** Refresh when the access token expires within this many seconds (default 60). */
  skew?: number;
}

export interface VerifyReport {
  /** Records that open. */
  ok: number;
  /** Records that do not, and why (never a secret). */
  failed: Array<{ id: string; message: string }>;
}

export interface RotationReport {
  /** The new data key's id. */
  keyId: number;
  /** Records re-sealed under it. */
  resealed: number;
  /** Whether an interrupted rotation was finished. */
  resumed: boolean;
}

/**
 * An open token store. Every method runs off the event loop and returns a Promise; one Store
 * may serve any number of concurrent calls.
 */
export declare class Store {
  private constructor();
  /** Creates a store at `uri` with exactly one credential as its first key slot. */
  static create(uri: string, credential: Credential): Promise<Store>;
  /**
   * Opens the store at `uri` with the credential given, or else the one the environment
   * names (TOKENVAULT_KEY, TOKENVAULT_PASSPHRASE, or the store's OS keychain slot).
   */
  static open(uri: string, credential?: Credential): Promise<Store>;
  /** The store's id (random, hex). */
  readonly storeId: string;
  /** The record the query matches (the Zoho rules), merged into the query, or null. */
  findToken(query: TokenInput): Promise<Token | null>;
  /** Saves the token (merged into the record it matches, else inserted); resolves to its id. */
  saveToken(token: TokenInput): Promise<string>;
  /** Deletes the record with this id (rejects with NotFound if there is none). */
  deleteToken(id: string): Promise<void>;
  /** Every record, in id order. */
  getTokens(): Promise<Token[]>;
  /** Deletes every record. */
  deleteTokens(): Promise<void>;
  /** The record with this id, or null. */
  findTokenById(id: string): Promise<Token | null>;
  /** A valid access token, refreshed (once for all concurrent callers) when due. */
  accessToken(options: AccessTokenOptions): Promise<string>;
  /** Opens every record. */
  verify(): Promise<VerifyReport>;
  /** Re-seals every record under a new data key (resumable). */
  rotate(): Promise<RotationReport>;
  /** Replaces the passphrase of the store's passphrase slot. */
  changePassphrase(passphrase: string): Promise<void>;
}

/** The Zoho accounts server's token endpoint for an API domain, or null. */
export declare function zohoTokenUrl(apiDomain: string): string | null;

/** Base class of every tokenvault error; `code` is the class's name. */
export declare class TokenvaultError extends Error {
  readonly code: string;
}
/** The passphrase or key opens none of the store's key slots (nothing was changed). */
export declare class WrongKey extends TokenvaultError {}
/** Stored bytes failed their integrity check: altered, truncated, or moved from elsewhere. */
export declare class Tampered extends TokenvaultError {}
/** No token has this id or matches the query. */
export declare class NotFound extends TokenvaultError {}
/** Another record already has this user name or token. */
export declare class Conflict extends TokenvaultError {}
/** The token cannot be stored as it is (unknown field, oversized or malformed value). */
export declare class InvalidToken extends TokenvaultError {}
/** create() found a store already there. */
export declare class StoreExists extends TokenvaultError {}
/** open() found no store there. */
export declare class NoStore extends TokenvaultError {}
/** The OS keychain could not give or keep the store's key. */
export declare class KeychainError extends TokenvaultError {}
/** The token endpoint failed or refused the refresh; the stored token is unchanged. */
export declare class RefreshError extends TokenvaultError {}
/** The storage backend failed (I/O, busy, unsafe file, database error). */
export declare class BackendError extends TokenvaultError {}
/** A key-management request that cannot be honoured. */
export declare class Refused extends TokenvaultError {}
/** No usable credential was given (or found in TOKENVAULT_KEY / TOKENVAULT_PASSPHRASE). */
export declare class CredentialError extends TokenvaultError {}
/** The store URI does not parse. */
export declare class InvalidUri extends TokenvaultError {}
