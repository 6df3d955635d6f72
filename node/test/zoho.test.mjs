// tokenvault/zoho with the real Zoho CRM Node.js SDK from npm, against the fake Zoho accounts
// and API server: sign-in with a grant token, a restart, an expired token, the store's own
// methods as the SDK calls them, and what reaches the disk.

import assert from "node:assert/strict";
import { copyFileSync, mkdirSync, readdirSync, symlinkSync } from "node:fs";
import { join } from "node:path";
import { test } from "node:test";
import { inspect } from "node:util";

import * as sdk from "@zohocrm/nodejs-sdk-8.0";
import { TokenvaultStore } from "tokenvault/zoho";

import {
  CLIENT_ID,
  CLIENT_SECRET,
  assertNoPlaintext,
  newKey,
  run,
  sampleToken,
  scratch,
  startFakeZoho,
  tokenvault,
} from "./helpers.mjs";

const { InvalidToken, NotFound, Store, WrongKey } = tokenvault;
const USER = "ann@example.com";
const SIGNED_IN = `${USER}:700000001`; // the SDK's user name: email and org id

/** A scratch layout: the store alone in store/, the SDK's resource files in resources/. */
function layout(t) {
  const dir = scratch(t);
  mkdirSync(join(dir, "store"));
  mkdirSync(join(dir, "resources"));
  return {
    storeDir: join(dir, "store"),
    uri: `sqlite:${join(dir, "store", "tokens.db")}`,
    resources: join(dir, "resources"),
    key: newKey(),
  };
}

/**
 * Initializes the SDK with `token` and `store`, in the fake server's environment, as a new
 * process would. (The SDK keeps its initializations in process-wide statics, and a second
 * sign-in with a grant token in one process fails inside the SDK, FileStore or not: each
 * test here starts from none.)
 */
async function initialize(fake, token, store, resources) {
  sdk.Initializer.LOCAL.clear();
  sdk.Initializer.initializer = undefined;
  const environment = new sdk.Environment(fake.url, fake.tokenUrl, fake.url);
  const builder = await new sdk.InitializeBuilder();
  await builder.environment(environment).token(token).store(store).resourcePath(resources).initialize();
}

/** Signs USER in with a grant token, as an application's first run does. */
async function signIn(fake, store, resources) {
  const code = await fake.grant(USER);
  const token = new sdk.OAuthBuilder()
    .clientId(CLIENT_ID)
    .clientSecret(CLIENT_SECRET)
    .grantToken(code)
    .redirectURL("https://app.example.com/oauth/callback")
    .build();
  await initialize(fake, token, store, resources);
  return { code, token };
}

/** Counts the SDK's calls of saveToken on `store`. */
function countSaves(store) {
  const counter = { saves: 0 };
  const save = store.saveToken.bind(store);
  store.saveToken = async (token) => {
    counter.saves += 1;
    return save(token);
  };
  return counter;
}

test("TokenvaultStore is the installed SDK's own TokenStore", async (t) => {
  const { uri, key } = layout(t);
  const store = new TokenvaultStore(uri, { key });
  assert.ok(store instanceof sdk.TokenStore.TokenStore);
  assert.ok((await store.store()) instanceof Store);
});

test("a grant-token sign-in stores the full record, and nothing in plaintext", async (t) => {
  const fake = await startFakeZoho(t);
  const { storeDir, uri, resources, key } = layout(t);
  const store = await TokenvaultStore.open(uri, { key });
  const { code, token } = await signIn(fake, store, resources);

  const records = await (await store.store()).getTokens();
  assert.equal(records.length, 1);
  const record = records[0];
  assert.equal(record.id, token.getId());
  assert.equal(typeof record.id, "string");
  assert.equal(record.user_name, SIGNED_IN);
  assert.equal(record.client_id, CLIENT_ID);
  assert.equal(record.client_secret, CLIENT_SECRET);
  assert.equal(record.grant_token, code);
  assert.match(record.refresh_token, /^1000\.refresh\./);
  assert.equal(record.access_token, token.getAccessToken());
  assert.match(record.access_token, /^1000\.access\./);
  const expiry = Number(record.expiry_time);
  assert.ok(expiry > Date.now() + 3_500_000 && expiry < Date.now() + 3_700_000, record.expiry_time);
  assert.equal(record.redirect_url, "https://app.example.com/oauth/callback");
  assert.equal(record.api_domain, fake.url);
  assert.deepEqual(await fake.stats(), {
    authorization_code: 1, refresh_token: 0, refused: 0, users: 1, org: 1, unauthorized: 0,
  });
  assertNoPlaintext(storeDir, [
    record.access_token, record.refresh_token, record.grant_token, CLIENT_SECRET, SIGNED_IN, USER,
  ]);
});

test("a restart signs in from the store without any request", async (t) => {
  const fake = await startFakeZoho(t);
  const { uri, resources, key } = layout(t);
  await signIn(fake, await TokenvaultStore.open(uri, { key }), resources);
  const before = await fake.stats();

  const store = new TokenvaultStore(uri, { key }); // a new process would do this
  const saves = countSaves(store);
  const token = new sdk.OAuthBuilder().userSignature(new sdk.UserSignature(SIGNED_IN)).build();
  await initialize(fake, token, store, resources);
  const record = (await (await store.store()).getTokens())[0];
  assert.equal(token.getAccessToken(), record.access_token);
  assert.equal(token.getId(), record.id);
  assert.equal(token.getExpiresIn(), record.expiry_time);
  assert.equal(token.getClientSecret(), CLIENT_SECRET);
  assert.deepEqual(await fake.stats(), before);
  assert.equal(saves.saves, 0);
});

test("an expired token: the store refreshes it once, stores the rotated refresh token", async (t) => {
  const fake = await startFakeZoho(t);
  const { storeDir, uri, resources, key } = layout(t);
  await signIn(fake, await TokenvaultStore.open(uri, { key }), resources);
  const plain = await Store.open(uri, { key });
  const old = (await plain.getTokens())[0];
  await plain.saveToken({ id: old.id, expiry_time: Date.now() - 1000 });
  const before = await fake.stats();

  // No tokenUrl: the record's api_domain is not Zoho's, so the SDK environment's accounts URL.
  const store = new TokenvaultStore(uri, { key });
  const saves = countSaves(store);
  const token = new sdk.OAuthBuilder().userSignature(new sdk.UserSignature(SIGNED_IN)).build();
  await initialize(fake, token, store, resources);

  const after = await fake.stats();
  assert.equal(after.refresh_token - before.refresh_token, 1);
  assert.equal(after.refused, 0);
  // The store refreshed inside findToken: the SDK had nothing to refresh or save itself.
  assert.equal(saves.saves, 0);
  const record = await plain.findTokenById(old.id);
  assert.notEqual(record.refresh_token, old.refresh_token);
  assert.notEqual(record.access_token, old.access_token);
  assert.ok(Number(record.expiry_time) > Date.now() + 3_000_000);
  assert.equal(token.getAccessToken(), record.access_token);
  assert.equal(token.getRefreshToken(), record.refresh_token);
  assert.equal(token.getExpiresIn(), record.expiry_time);
  const answer = await fetch(`${fake.url}/crm/v8/org`, {
    headers: { Authorization: `Zoho-oauthtoken ${token.getAccessToken()}` },
  });
  assert.equal(answer.status, 200);
  assertNoPlaintext(storeDir, [
    old.access_token, old.refresh_token, record.access_token, record.refresh_token, CLIENT_SECRET, SIGNED_IN,
  ]);
});

test("the store's methods as the SDK calls them: ids as strings, new tokens by id", async (t) => {
  const fake = await startFakeZoho(t);
  const { uri, key } = layout(t);
  // api_domain is a real Zoho domain (no network here): the refresh must go to tokenUrl.
  const store = new TokenvaultStore(uri, { key, tokenUrl: fake.tokenUrl });
  const plain = await store.store();
  const live = await fake.issueRefreshToken("b@example.com");
  const stale = await plain.saveToken(sampleToken("b@example.com:1", { refresh: live, expiresInMs: -5000 }));
  const fresh = await plain.saveToken(sampleToken("c@example.com:1"));

  // findTokenById: a new OAuthToken, refreshed when due.
  const byId = await store.findTokenById(stale);
  assert.ok(byId instanceof sdk.OAuthToken);
  assert.equal(byId.getId(), stale);
  assert.equal(byId.getUserSignature().getName(), "b@example.com:1");
  assert.notEqual(byId.getAccessToken(), "1000.access.b@example.com:1");
  assert.ok(Number(byId.getExpiresIn()) > Date.now() + 3_000_000);
  assert.equal(byId.getAPIDomain(), fake.url); // the token endpoint's answer names it
  assert.equal((await fake.stats()).refresh_token, 1);
  await assert.rejects(store.findTokenById("no-such-id"), NotFound);

  // findToken fills and returns the very token it is given; non-OAuthTokens pass through.
  const query = new sdk.OAuthBuilder().userSignature(new sdk.UserSignature("c@example.com:1")).build();
  assert.equal(await store.findToken(query), query);
  assert.equal(query.getId(), fresh);
  assert.equal(query.getAccessToken(), "1000.access.c@example.com:1");
  assert.equal(query.getClientId(), CLIENT_ID);
  const byRefresh = new sdk.OAuthBuilder().clientId(CLIENT_ID).clientSecret(CLIENT_SECRET).refreshToken("1000.refresh.c@example.com:1").build();
  assert.equal((await store.findToken(byRefresh)).getId(), fresh);
  const unknown = new sdk.OAuthBuilder().userSignature(new sdk.UserSignature("nobody@example.com")).build();
  assert.equal(await store.findToken(unknown), null);
  assert.equal(await store.findToken("not a token"), "not a token");
  assert.equal((await fake.stats()).refresh_token, 1);

  // saveToken sets the id on the token it is given; numeric ids are accepted as text.
  const added = new sdk.OAuthBuilder().clientId(CLIENT_ID).clientSecret(CLIENT_SECRET).refreshToken("1000.refresh.d").build();
  added.setAccessToken("1000.access.d");
  added.setExpiresIn(String(Date.now() + 3_600_000));
  await store.saveToken(added);
  assert.equal(typeof added.getId(), "string");
  assert.equal((await plain.findTokenById(added.getId())).refresh_token, "1000.refresh.d");

  // A token carrying its own refresh token, spent by the store's refresh: it gets the rotated
  // one, with the new access token and expiry.
  const carriedRefresh = await fake.issueRefreshToken("e@example.com");
  const eId = await plain.saveToken(sampleToken("e@example.com:1", { refresh: carriedRefresh, expiresInMs: -5000 }));
  const carried = new sdk.OAuthBuilder()
    .clientId(CLIENT_ID)
    .clientSecret(CLIENT_SECRET)
    .refreshToken(carriedRefresh)
    .accessToken("1000.access.e@example.com:1")
    .build();
  assert.equal(await store.findToken(carried), carried);
  const eRecord = await plain.findTokenById(eId);
  assert.notEqual(eRecord.refresh_token, carriedRefresh);
  assert.equal(carried.getId(), eId);
  assert.equal(carried.getRefreshToken(), eRecord.refresh_token);
  assert.equal(carried.getAccessToken(), eRecord.access_token);
  assert.equal(carried.getExpiresIn(), eRecord.expiry_time);
  assert.equal((await fake.stats()).refresh_token, 2);

  const all = await store.getTokens();
  assert.equal(all.length, 4);
  for (const token of all) {
    assert.ok(token instanceof sdk.OAuthToken);
    assert.equal(typeof token.getId(), "string");
    assert.match(token.getExpiresIn(), /^\d+$/);
  }
  await store.deleteToken(added.getId());
  await assert.rejects(store.deleteToken(added.getId()), NotFound);
  await store.deleteTokens();
  assert.deepEqual(await store.getTokens(), []);
});

test("a failed saveToken is re-thrown by the SDK, and nothing is stored", async (t) => {
  const fake = await startFakeZoho(t);
  const { uri, resources, key } = layout(t);
  const store = await TokenvaultStore.open(uri, { key });
  const rejected = new sdk.OAuthBuilder().userSignature(new sdk.UserSignature("x@example.com")).build();
  await assert.rejects(store.saveToken(rejected), InvalidToken); // no token to insert

  const code = await fake.grant(USER);
  const token = new sdk.OAuthBuilder()
    .clientId(CLIENT_ID)
    .clientSecret(CLIENT_SECRET)
    .grantToken(code)
    .redirectURL(`https://app.example.com/${"x".repeat(17 * 1024)}`) // over the 16 KiB bound
    .build();
  await assert.rejects(initialize(fake, token, store, resources), (error) => {
    assert.match(inspect(error, { depth: 6 }), /redirect_url is longer than 16 KiB/);
    return true;
  });
  assert.deepEqual(await (await store.store()).getTokens(), []);
});

test("the SDK's steady state by id: the store refreshes in findTokenById, the SDK saves nothing", async (t) => {
  const fake = await startFakeZoho(t);
  const { uri, resources, key } = layout(t);
  await signIn(fake, await TokenvaultStore.open(uri, { key }), resources);
  const plain = await Store.open(uri, { key });
  const old = (await plain.getTokens())[0];
  await plain.saveToken({ id: old.id, expiry_time: Date.now() - 1000 });
  const before = await fake.stats();

  const store = new TokenvaultStore(uri, { key, tokenUrl: fake.tokenUrl });
  const saves = countSaves(store);
  const token = new sdk.OAuthBuilder().id(old.id).build();
  await initialize(fake, token, store, resources);

  const after = await fake.stats();
  assert.equal(after.refresh_token - before.refresh_token, 1);
  assert.equal(saves.saves, 0);
  const record = await plain.findTokenById(old.id);
  assert.notEqual(record.access_token, old.access_token);
  assert.equal(token.getAccessToken(), record.access_token);
});

test("the constructor's key is copied: zeroing it afterwards changes nothing", async (t) => {
  const { uri, key } = layout(t);
  const given = Buffer.from(key);
  const store = new TokenvaultStore(uri, { key: given }); // creates the store in the background
  given.fill(0);
  assert.deepEqual(await store.getTokens(), []);
  await Store.open(uri, { key }); // the store was made with the key as it was given
  await assert.rejects(Store.open(uri, { key: Buffer.alloc(32) }), WrongKey);
});

test("constructor options, and an opening failure reported by the first call", async (t) => {
  const { uri, key } = layout(t);
  assert.throws(() => new TokenvaultStore(uri, { key, token_url: "x" }), (e) => e instanceof TypeError && /unknown option "token_url"/.test(e.message));
  assert.throws(() => new TokenvaultStore(uri, { key, skew: -1 }), (e) => e.code === "ERR_INVALID_ARG_VALUE");
  assert.throws(() => new TokenvaultStore(uri, { key, skew: 0.5 }), /1 or more/);
  assert.throws(() => new TokenvaultStore(uri, { key, tokenUrl: 5 }), (e) => e.code === "ERR_INVALID_ARG_TYPE");
  assert.throws(() => new TokenvaultStore(uri, "key"), (e) => e.code === "ERR_INVALID_ARG_TYPE");
  await TokenvaultStore.open(uri, { key }); // creates the store
  await assert.rejects(TokenvaultStore.open(uri, { key: newKey() }), WrongKey);
  const wrong = new TokenvaultStore(uri, { key: newKey() });
  await assert.rejects(wrong.getTokens(), WrongKey);
  await assert.rejects(wrong.findTokenById("x"), WrongKey);
  const both = new TokenvaultStore(uri, { key, passphrase: "and a passphrase" });
  await assert.rejects(both.getTokens(), (e) => e instanceof TypeError && /give one credential/.test(e.message));
});

test("without the SDK installed, tokenvault/zoho says what to install", async (t) => {
  // The package's files alone in a directory with no node_modules above it.
  const dir = scratch(t);
  const here = new URL("..", import.meta.url).pathname;
  for (const file of ["index.js", "zoho.mjs"]) copyFileSync(join(here, file), join(dir, file));
  const addon = readdirSync(here).find((f) => /^tokenvault\..+\.node$/.test(f));
  symlinkSync(join(here, addon), join(dir, addon));
  const result = await run(process.execPath, ["--input-type=module", "-e", `await import(${JSON.stringify(join(dir, "zoho.mjs"))})`]);
  assert.notEqual(result.status, 0);
  assert.match(result.stderr, /tokenvault\/zoho needs the Zoho CRM Node\.js SDK: npm install @zohocrm\/nodejs-sdk-8\.0/);
  // The plain Store API does not need the SDK.
  const plain = await run(process.execPath, ["-e", `require(${JSON.stringify(join(dir, "index.js"))}).Store.create("memory:", { key: Buffer.alloc(32, 7) }).then((s) => console.log(typeof s.storeId))`]);
  assert.equal(plain.status, 0, plain.stderr);
  assert.equal(plain.stdout.trim(), "string");
});
