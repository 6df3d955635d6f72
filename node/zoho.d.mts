// Type declarations of `tokenvault/zoho` (zoho.mjs). The Zoho SDK ships no declarations, so
// its tokens are typed loosely here.

import type { Store } from "./index.js";

export interface TokenvaultStoreOptions {
  /** The store's passphrase (give at most one of passphrase, key, keychain). */
  passphrase?: string;
  /** The store's 32-byte raw key. */
  key?: Uint8Array;
  /** Use the store's OS keychain slot. */
  keychain?: boolean;
  /** The full token endpoint (the SDK Environment's accountsUrl). */
  tokenUrl?: string;
  /** Seconds beyond the SDK's own 5 s refresh window at which the store refreshes first (default 5, at least 1). */
  skew?: number;
}

/** An instance of the SDK's OAuthToken. */
type OAuthToken = any;

/** The Zoho CRM Node.js SDK's TokenStore, encrypted and race-free. */
export declare class TokenvaultStore {
  constructor(uri: string, options?: TokenvaultStoreOptions);
  /** A TokenvaultStore whose store is open (rejects with the opening's error). */
  static open(uri: string, options?: TokenvaultStoreOptions): Promise<TokenvaultStore>;
  /** The underlying tokenvault Store. */
  store(): Promise<Store>;
  findToken(token: OAuthToken): Promise<OAuthToken | null>;
  findTokenById(id: string): Promise<OAuthToken>;
  saveToken(token: OAuthToken): Promise<void>;
  deleteToken(id: string): Promise<void>;
  getTokens(): Promise<OAuthToken[]>;
  deleteTokens(): Promise<void>;
}
