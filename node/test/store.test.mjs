// The Store API: the six operations on plain objects, opening and credentials, maintenance,
// every error class, argument errors, and concurrent Promises.

import assert from "node:assert/strict";
import { readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { test } from "node:test";

import {
  CLIENT_ID,
  CLIENT_SECRET,
  newKey,
  run,
  sampleToken,
  scratch,
  startFakeZoho,
  tokenvault,
} from "./helpers.mjs";

const {
  FIELDS,
  Store,
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
  zohoTokenUrl,
} = tokenvault;

/** `error` is an instance of `cls` whose code and name are the class's name. */
function isError(cls) {
  return (error) => {
    assert.ok(error instanceof cls, `expected ${cls.name}, got ${error?.constructor?.name}: ${error?.message}`);
    assert.ok(error instanceof TokenvaultError);
    assert.equal(error.code, cls.name);
    assert.equal(error.name, cls.name);
    return true;
  };
}

/** A TypeError with Node's code for a wrong argument, whose message matches `pattern`. */
function isArgError(code, pattern) {
  return (error) => {
    assert.ok(error instanceof TypeError, `expected TypeError, got ${error?.constructor?.name}: ${error?.message}`);
    assert.equal(error.code, code);
    assert.match(error.message, pattern);
    return true;
  };
}

async function newStore(t, scheme = "sqlite") {
  const dir = scratch(t);
  const key = newKey();
  const uri = `${scheme}:${join(dir, scheme === "sqlite" ? "tokens.db" : "tokens.tv")}`;
  return { dir, key, uri, store: await Store.create(uri, { key }) };
}

test("FIELDS lists the ten Zoho field names", () => {
  assert.deepEqual(FIELDS, [
    "id", "user_name", "client_id", "client_secret", "refresh_token",
    "access_token", "grant_token", "expiry_time", "redirect_url", "api_domain",
  ]);
  assert.ok(Object.isFrozen(FIELDS));
});

test("records are plain objects with all ten keys, null for unset, expiry a digit string", async (t) => {
  const { store } = await newStore(t);
  assert.match(store.storeId, /^[0-9a-f]{16,}$/);
  const id = await store.saveToken({
    user_name: "ann@example.com",
    client_id: CLIENT_ID,
    client_secret: CLIENT_SECRET,
    refresh_token: "1000.refresh.ann",
    access_token: "1000.access.ann",
    expiry_time: 1_900_000_000_000, // a number in, a string out
    api_domain: "https://www.zohoapis.eu",
  });
  assert.equal(typeof id, "string");
  const found = await store.findTokenById(id);
  assert.deepEqual(found, {
    id,
    user_name: "ann@example.com",
    client_id: CLIENT_ID,
    client_secret: CLIENT_SECRET,
    refresh_token: "1000.refresh.ann",
    access_token: "1000.access.ann",
    grant_token: null,
    expiry_time: "1900000000000",
    redirect_url: null,
    api_domain: "https://www.zohoapis.eu",
  });
  assert.deepEqual(Object.keys(found), [...FIELDS]);
  assert.equal(Object.getPrototypeOf(found), Object.prototype);
  // expiry_time as a digit string in, too; undefined and null leave a field out.
  const id2 = await store.saveToken({ user_name: "bob", grant_token: "1000.grant.b", expiry_time: "42", redirect_url: undefined, api_domain: null });
  const bob = await store.findTokenById(id2);
  assert.equal(bob.expiry_time, "42");
  assert.equal(bob.api_domain, null);
  assert.equal(await store.findTokenById("no-such-id"), null);
});

test("findToken follows the Zoho matching rules and merges the record into the query", async (t) => {
  const { store } = await newStore(t);
  const id = await store.saveToken(sampleToken("ann@example.com"));
  // 1. user name; the query's own fields win over the stored ones.
  const byUser = await store.findToken({ user_name: "ann@example.com", redirect_url: "https://app/cb" });
  assert.equal(byUser.id, id);
  assert.equal(byUser.redirect_url, "https://app/cb");
  assert.equal(byUser.refresh_token, "1000.refresh.ann@example.com");
  // 2. access token without client id and secret.
  assert.equal((await store.findToken({ access_token: "1000.access.ann@example.com" })).id, id);
  // 3. refresh token with client id and secret.
  const byRefresh = await store.findToken({
    refresh_token: "1000.refresh.ann@example.com",
    client_id: CLIENT_ID,
    client_secret: CLIENT_SECRET,
  });
  assert.equal(byRefresh.id, id);
  // No match.
  assert.equal(await store.findToken({ user_name: "nobody" }), null);
  assert.equal(await store.findToken({ access_token: "1000.access.ann@example.com", client_id: CLIENT_ID }), null);
  assert.equal(await store.findToken({}), null);
});

test("saveToken updates by id or by match, merging; delete and deleteTokens", async (t) => {
  const { store } = await newStore(t);
  const id = await store.saveToken(sampleToken("ann@example.com"));
  // By id: fields left out keep their stored values.
  assert.equal(await store.saveToken({ id, access_token: "1000.access.new" }), id);
  let record = await store.findTokenById(id);
  assert.equal(record.access_token, "1000.access.new");
  assert.equal(record.refresh_token, "1000.refresh.ann@example.com");
  // By user name: the same record, no duplicate.
  assert.equal(await store.saveToken({ user_name: "ann@example.com", access_token: "1000.access.newer" }), id);
  record = await store.findTokenById(id);
  assert.equal(record.access_token, "1000.access.newer");
  const other = await store.saveToken(sampleToken("bob@example.com"));
  assert.notEqual(other, id);
  const all = await store.getTokens();
  assert.deepEqual(all.map((r) => r.id).sort(), [id, other].sort());
  assert.deepEqual(all.map((r) => r.user_name).sort(), ["ann@example.com", "bob@example.com"]);

  await store.deleteToken(id);
  assert.equal(await store.findTokenById(id), null);
  await assert.rejects(store.deleteToken(id), isError(NotFound));
  await store.deleteTokens();
  assert.deepEqual(await store.getTokens(), []);
});

test("open: with the credential, from TOKENVAULT_KEY, and its failures", async (t) => {
  const { dir, key, uri, store } = await newStore(t);
  const id = await store.saveToken(sampleToken("ann@example.com"));
  const again = await Store.open(uri, { key: new Uint8Array(key) });
  assert.equal(again.storeId, store.storeId);
  assert.equal((await again.findTokenById(id)).user_name, "ann@example.com");

  await assert.rejects(Store.open(uri, { key: newKey() }), isError(WrongKey));
  await assert.rejects(Store.open(uri, { passphrase: "not this store's" }), isError(WrongKey));
  await assert.rejects(Store.create(uri, { key }), isError(StoreExists));
  await assert.rejects(Store.open(`sqlite:${join(dir, "missing.db")}`, { key }), isError(NoStore));
  await assert.rejects(Store.open(`sqlite:${join(dir, "missing.db")}`), isError(NoStore));
  await assert.rejects(Store.open("memory:"), isError(NoStore));
  await assert.rejects(Store.open("bogus:whatever", { key }), isError(InvalidUri));

  // No credential: the environment's.
  const saved = process.env.TOKENVAULT_KEY;
  try {
    delete process.env.TOKENVAULT_KEY;
    await assert.rejects(Store.open(uri), isError(CredentialError));
    process.env.TOKENVAULT_KEY = key.toString("base64");
    const fromEnv = await Store.open(uri);
    assert.equal((await fromEnv.findTokenById(id)).id, id);
    process.env.TOKENVAULT_KEY = newKey().toString("base64");
    await assert.rejects(Store.open(uri), isError(WrongKey));
  } finally {
    if (saved === undefined) delete process.env.TOKENVAULT_KEY;
    else process.env.TOKENVAULT_KEY = saved;
  }
});

test("a passphrase store: open, changePassphrase, the old passphrase fails", async (t) => {
  const dir = scratch(t);
  const uri = `sqlite:${join(dir, "tokens.db")}`;
  const store = await Store.create(uri, { passphrase: "correct horse battery" });
  const id = await store.saveToken(sampleToken("ann@example.com"));
  await assert.rejects(Store.open(uri, { passphrase: "wrong horse battery" }), isError(WrongKey));
  await assert.rejects(Store.open(uri, { key: newKey() }), isError(WrongKey));
  await store.changePassphrase("staple tuning fork");
  await assert.rejects(Store.open(uri, { passphrase: "correct horse battery" }), isError(WrongKey));
  const reopened = await Store.open(uri, { passphrase: "staple tuning fork" });
  assert.equal((await reopened.findTokenById(id)).user_name, "ann@example.com");
  await assert.rejects(store.changePassphrase(""), isArgError("ERR_INVALID_ARG_VALUE", /empty/));
  await assert.rejects(store.changePassphrase(42), isArgError("ERR_INVALID_ARG_TYPE", /passphrase must be a string/));
});

test("verify and rotate", async (t) => {
  const { key, uri, store } = await newStore(t);
  const ids = [];
  for (const user of ["a@x.com", "b@x.com", "c@x.com"]) ids.push(await store.saveToken(sampleToken(user)));
  assert.deepEqual(await store.verify(), { ok: 3, failed: [] });
  const report = await store.rotate();
  assert.deepEqual(report, { keyId: 2, resealed: 3, resumed: false });
  const reopened = await Store.open(uri, { key });
  assert.deepEqual(await reopened.verify(), { ok: 3, failed: [] });
  for (const id of ids) assert.equal((await reopened.findTokenById(id)).id, id);
  // A store made with a raw key has no passphrase slot to change.
  await assert.rejects(store.changePassphrase("a new passphrase"), isError(Refused));
});

test("a tampered file store: the altered record fails, the others still open", async (t) => {
  const { dir, key, uri, store } = await newStore(t, "file");
  const good = await store.saveToken(sampleToken("a@x.com"));
  const bad = await store.saveToken(sampleToken("z@x.com"));
  // Records are written in id order; the last bytes of the file are the GCM tag of the
  // record with the greater id.
  const [first, last] = [good, bad].sort();
  const path = join(dir, "tokens.tv");
  const bytes = readFileSync(path);
  bytes[bytes.length - 1] ^= 0x01;
  writeFileSync(path, bytes);
  const reopened = await Store.open(uri, { key });
  await assert.rejects(reopened.findTokenById(last), isError(Tampered));
  assert.equal((await reopened.findTokenById(first)).id, first);
  const report = await reopened.verify();
  assert.equal(report.ok, 1);
  assert.deepEqual(report.failed.map((f) => f.id), [last]);
  assert.match(report.failed[0].message, /integrity/);
});

test("a tampered SQLite store: records swapped between ids are refused", async (t) => {
  const { dir, key, uri, store } = await newStore(t);
  const a = await store.saveToken(sampleToken("a@x.com"));
  const b = await store.saveToken(sampleToken("b@x.com"));
  const swap = `
import sqlite3, sys
db = sqlite3.connect(sys.argv[1])
rows = dict(db.execute("SELECT id, sealed FROM tokenvault_records"))
a, b = sys.argv[2], sys.argv[3]
db.execute("UPDATE tokenvault_records SET sealed = ? WHERE id = ?", (rows[b], a))
db.execute("UPDATE tokenvault_records SET sealed = ? WHERE id = ?", (rows[a], b))
db.commit()
`;
  const result = await run("python3", ["-c", swap, join(dir, "tokens.db"), a, b]);
  assert.equal(result.status, 0, result.stderr);
  const reopened = await Store.open(uri, { key });
  await assert.rejects(reopened.findTokenById(a), isError(Tampered));
  await assert.rejects(reopened.findToken({ user_name: "b@x.com" }), isError(Tampered));
  assert.deepEqual((await reopened.verify()).failed.map((f) => f.id).sort(), [a, b].sort());
});

test("every error class: instanceof, code and name", async (t) => {
  const { dir, store } = await newStore(t);
  // Conflict: giving a record another record's user name.
  await store.saveToken(sampleToken("u1@x.com"));
  const second = await store.saveToken(sampleToken("u2@x.com"));
  await assert.rejects(store.saveToken({ id: second, user_name: "u1@x.com" }), isError(Conflict));
  // InvalidToken: unknown field, oversized value, no token to insert, malformed expiry.
  await assert.rejects(store.saveToken({ user_name: "x", acces_token: "typo" }), isError(InvalidToken));
  await assert.rejects(store.saveToken({ user_name: "x", access_token: "a".repeat(16 * 1024 + 1) }), isError(InvalidToken));
  await assert.rejects(store.saveToken({ user_name: "x".repeat(100_000), access_token: "a" }), isError(InvalidToken));
  await assert.rejects(store.saveToken({ user_name: "nobody@x.com" }), isError(InvalidToken));
  await assert.rejects(store.saveToken({ user_name: "x", access_token: "a", expiry_time: "soon" }), isError(InvalidToken));
  await assert.rejects(store.saveToken({ user_name: "x", access_token: "a", expiry_time: 1.5 }), isError(InvalidToken));
  await assert.rejects(store.saveToken({ user_name: "x", access_token: "a", expiry_time: -1 }), isError(InvalidToken));
  await assert.rejects(store.saveToken({ user_name: "a\uD800b", access_token: "a" }), isError(InvalidToken));
  // NotFound: accessToken for no record.
  await assert.rejects(store.accessToken({ user: "nobody@x.com" }), isError(NotFound));
  // RefreshError: no usable token endpoint (plain http to a non-loopback host).
  await store.saveToken(sampleToken("old@x.com", { expiresInMs: -60_000 }));
  await assert.rejects(
    store.accessToken({ user: "old@x.com", tokenUrl: "http://accounts.example.com/oauth/v2/token" }),
    isError(RefreshError),
  );
  // BackendError: a directory where the database should be.
  await assert.rejects(Store.create(`sqlite:${dir}`, { key: newKey() }), isError(BackendError));
  // KeychainError: no Secret Service reachable (a child process with no session bus).
  const script = `
const { Store } = require(${JSON.stringify(new URL("../index.js", import.meta.url).pathname)});
Store.create(${JSON.stringify(`sqlite:${join(dir, "keychain.db")}`)}, { keychain: true }).then(
  () => console.log("created"),
  (e) => console.log(JSON.stringify({ name: e.constructor.name, code: e.code, tv: e instanceof Error })),
);`;
  const child = await run(process.execPath, ["-e", script], {
    env: { DBUS_SESSION_BUS_ADDRESS: "unix:path=/nonexistent/tokenvault-test-bus" },
  });
  assert.equal(child.status, 0, child.stderr);
  assert.deepEqual(JSON.parse(child.stdout), { name: "KeychainError", code: "KeychainError", tv: true });
  assert.ok(new KeychainError("x") instanceof TokenvaultError);
  // The base class.
  const base = new TokenvaultError("message");
  assert.equal(base.code, "TokenvaultError");
  assert.ok(base instanceof Error);
  // No message carries a secret.
  const secret = "1000.access.secret-value-42";
  await store.saveToken({ user_name: "s@x.com", access_token: secret });
  await assert.rejects(store.saveToken({ id: second, access_token: secret }), (e) => {
    assert.ok(e instanceof Conflict);
    assert.ok(!e.message.includes(secret));
    return true;
  });
});

test("wrong argument types and values are TypeErrors with Node's codes", async (t) => {
  const { uri, store } = await newStore(t);
  const type = "ERR_INVALID_ARG_TYPE";
  const value = "ERR_INVALID_ARG_VALUE";
  const cases = [
    [() => store.findToken("ann"), type, /a token is an object/],
    [() => store.findToken(null), type, /not null/],
    [() => store.findToken([]), type, /not an array/],
    [() => store.saveToken({ user_name: 42 }), type, /user_name must be a string or null, not number/],
    [() => store.saveToken({ expiry_time: {} }), type, /expiry_time must be a string of digits/],
    [() => store.saveToken({ expiry_time: 10n }), type, /expiry_time must be .*, not bigint/],
    [() => store.findTokenById(42), type, /id must be a string/],
    [() => store.deleteToken(undefined), type, /id must be a string/],
    [() => store.accessToken("ann"), type, /options must be an object/],
    [() => store.accessToken({ user: "a", id: "b" }), value, /one of user or id/],
    [() => store.accessToken({ user: "a", skew: -1 }), value, /skew must be a finite number/],
    [() => store.accessToken({ user: "a", skew: "60" }), type, /skew must be a number/],
    [() => store.accessToken({ user: "a", tokenurl: "x" }), value, /unknown option "tokenurl"/],
    [() => Store.create(42, { key: newKey() }), type, /uri must be a string/],
    [() => Store.create("memory:"), value, /needs one credential/],
    [() => Store.create("memory:", {}), value, /needs one credential/],
    [() => Store.create("memory:", { key: newKey().subarray(0, 31) }), value, /key must be 32 bytes, not 31/],
    [() => Store.create("memory:", { key: "0".repeat(32) }), type, /key must be a Buffer or Uint8Array/],
    [() => Store.create("memory:", { key: new Uint16Array(16) }), type, /key must be a Buffer or Uint8Array/],
    [() => Store.create("memory:", { key: newKey(), passphrase: "two credentials" }), value, /give one credential/],
    [() => Store.create("memory:", { keychain: "yes" }), type, /keychain must be a boolean/],
    [() => Store.create("memory:", { passphrase: "" }), value, /empty/],
    [() => Store.open(uri, { pasphrase: "typo" }), value, /unknown option "pasphrase"/],
    [() => Store.open(uri, "a passphrase"), type, /credential must be an object/],
  ];
  for (const [call, code, pattern] of cases) {
    await assert.rejects(call(), isArgError(code, pattern));
  }
  // What a getter throws while an argument is read is what the caller gets.
  const boom = new Error("boom from a getter");
  await assert.rejects(store.saveToken({ get user_name() { throw boom; } }), (e) => e === boom);
  await assert.rejects(Store.open(uri, { get key() { throw boom; } }), (e) => e === boom);
  assert.throws(() => new Store(), /Store\.create/);
  assert.throws(() => zohoTokenUrl(42), isArgError(type, /apiDomain must be a string/));
});

test("concurrent Promises: 8 users x 25 saves each, no duplicates, one id per user", async (t) => {
  const { key, uri, store } = await newStore(t);
  // Two handles on one database, as two parts of an application would have.
  const other = await Store.open(uri, { key });
  const users = Array.from({ length: 8 }, (_, i) => `user${i}@example.com`);
  const saves = [];
  for (let round = 0; round < 25; round++) {
    for (const [u, user] of users.entries()) {
      const handle = (round + u) % 2 === 0 ? store : other;
      saves.push(
        handle.saveToken({ user_name: user, access_token: `1000.access.${user}.${round}`, client_id: CLIENT_ID })
          .then((id) => ({ user, id })),
      );
    }
  }
  const results = await Promise.all(saves);
  assert.equal(results.length, 200);
  const idsByUser = new Map(users.map((u) => [u, new Set()]));
  for (const { user, id } of results) idsByUser.get(user).add(id);
  for (const [user, ids] of idsByUser) assert.equal(ids.size, 1, `${user} got ${ids.size} ids`);
  const records = await store.getTokens();
  assert.equal(records.length, 8);
  assert.deepEqual(records.map((r) => r.user_name).sort(), [...users].sort());
  for (const record of records) {
    assert.match(record.access_token, new RegExp(`^1000\\.access\\.${record.user_name.replace(".", "\\.")}\\.\\d+$`));
  }
  // And finds interleaved with saves, all resolved.
  const mixed = await Promise.all(
    users.flatMap((user) => [store.findToken({ user_name: user }), other.saveToken({ user_name: user, access_token: `1000.access.${user}.last` })]),
  );
  for (const [i, result] of mixed.entries()) {
    if (i % 2 === 0) assert.equal(result.user_name, users[i / 2]); // every find found its record
    else assert.match(result, /^[0-9a-f]+$/); // every save resolved to an id
  }
  assert.equal((await other.getTokens()).length, 8);
});

test("accessToken: one refresh for many concurrent Promises, the rotated refresh token stored", async (t) => {
  const fake = await startFakeZoho(t, 0.2);
  const { store } = await newStore(t);
  const issued = { refresh_token: await fake.issueRefreshToken("ann@example.com") };
  const id = await store.saveToken(sampleToken("ann@example.com", { refresh: issued.refresh_token, expiresInMs: -1000 }));
  const before = await fake.stats();

  const tokens = await Promise.all(
    Array.from({ length: 10 }, () => store.accessToken({ user: "ann@example.com", tokenUrl: fake.tokenUrl })),
  );
  assert.equal(new Set(tokens).size, 1);
  const after = await fake.stats();
  assert.equal(after.refresh_token - before.refresh_token, 1);
  assert.equal(after.refused, before.refused);
  const record = await store.findTokenById(id);
  assert.equal(record.access_token, tokens[0]);
  assert.notEqual(record.refresh_token, issued.refresh_token);
  assert.ok(Number(record.expiry_time) > Date.now() + 3_000_000);
  // Fresh now: by id too, no further request.
  assert.equal(await store.accessToken({ id, tokenUrl: fake.tokenUrl }), tokens[0]);
  assert.equal((await fake.stats()).refresh_token, after.refresh_token);
  // A skew past the token's life refreshes again, with the rotated refresh token.
  const next = await store.accessToken({ id, tokenUrl: fake.tokenUrl, skew: 7200 });
  assert.notEqual(next, tokens[0]);
  assert.equal((await fake.stats()).refresh_token, after.refresh_token + 1);
  // The server refusing (a spent refresh token) is a RefreshError; the record is unchanged.
  await store.saveToken({ id, refresh_token: issued.refresh_token, expiry_time: "0" });
  await assert.rejects(store.accessToken({ id, tokenUrl: fake.tokenUrl }), (e) => {
    assert.ok(e instanceof RefreshError);
    assert.match(e.message, /invalid_code/);
    return true;
  });
  assert.equal((await store.findTokenById(id)).refresh_token, issued.refresh_token);
});

test("inherited properties are never read as token fields or options", async (t) => {
  const fake = await startFakeZoho(t);
  const { store } = await newStore(t);
  await store.saveToken({ user_name: "ann", client_id: CLIENT_ID, client_secret: CLIENT_SECRET,
    refresh_token: "1000.refresh.unknown", access_token: "a", expiry_time: "1000" });
  Object.prototype.access_token = "1000.polluted";
  Object.prototype.tokenUrl = "http://127.0.0.1:9/polluted";
  try {
    // Not a record with the polluted access token: a record with no token at all, refused.
    await assert.rejects(store.saveToken({ user_name: "bob" }), InvalidToken);
    // The refresh goes to the URL given, not to the inherited one.
    await assert.rejects(store.accessToken({ user: "ann", tokenUrl: fake.tokenUrl }), RefreshError);
    assert.equal((await fake.stats()).refresh_token, 1);
  } finally {
    delete Object.prototype.access_token;
    delete Object.prototype.tokenUrl;
  }
  assert.equal((await store.findToken({ user_name: "ann" })).access_token, "a");
});

test("no secret reaches an error message or stack", async (t) => {
  const fake = await startFakeZoho(t);
  const { store } = await newStore(t);
  const secret = "1000.secret-probe-value";
  const failures = [
    () => store.saveToken({ refresh_token: secret, expiry_time: secret }),
    () => store.saveToken({ refresh_token: secret.repeat(2000) }),
    () => store.saveToken({ refresh_token: `${secret}\ud800` }),
    () => store.saveToken({ user_name: "ann", client_id: CLIENT_ID, client_secret: secret,
      refresh_token: secret, access_token: "a", expiry_time: "1000" })
      .then(() => store.accessToken({ user: "ann", tokenUrl: fake.tokenUrl })),
    () => Store.open(`postgres://ann:${secret}@127.0.0.1:1/db?bogus=1`, { key: newKey() }),
  ];
  for (const failure of failures) {
    const error = await failure().then(() => assert.fail("resolved"), (e) => e);
    assert.ok(!String(error.message).includes("secret-probe"), error.message);
    assert.ok(!String(error.stack).includes("secret-probe"), error.stack);
  }
});

test("zohoTokenUrl maps Zoho API domains to their accounts server", () => {
  assert.equal(zohoTokenUrl("https://www.zohoapis.eu"), "https://accounts.zoho.eu/oauth/v2/token");
  assert.equal(zohoTokenUrl("https://www.zohoapis.com"), "https://accounts.zoho.com/oauth/v2/token");
  assert.equal(zohoTokenUrl("https://example.com"), null);
});

test("calls run off the event loop: timers fire while a key derivation is in flight", async (t) => {
  const dir = scratch(t);
  let ticks = 0;
  const timer = setInterval(() => ticks++, 5);
  try {
    // Argon2id at its default cost (64 MiB, t = 3) takes a few hundred milliseconds.
    await Store.create(`sqlite:${join(dir, "passphrase.db")}`, { passphrase: "correct horse battery staple" });
  } finally {
    clearInterval(timer);
  }
  // Blocked, the loop would have run the timer at most once, after the call.
  assert.ok(ticks >= 5, `the timer fired ${ticks} times during the call`);
});

test("a pending call keeps the process alive until it settles, then lets it exit", async () => {
  const index = new URL("../index.js", import.meta.url).pathname;
  const script = `
    const { Store } = require(${JSON.stringify(index)});
    Store.create("memory:", { key: Buffer.alloc(32, 7) })
      .then((store) => store.saveToken({ user_name: "ann@example.com", refresh_token: "1000.r" }).then(() => store.getTokens()))
      .then((tokens) => console.log("settled", tokens.length, tokens[0].user_name));
  `;
  const { status, stdout, stderr } = await run(process.execPath, ["-e", script]);
  assert.equal(status, 0, stderr);
  assert.equal(stdout.trim(), "settled 1 ann@example.com");
});

test("many calls in flight at once all settle, each with its own result", async (t) => {
  const { store } = await newStore(t);
  const users = Array.from({ length: 64 }, (_, i) => `user${i}@example.com`);
  const ids = await Promise.all(users.map((user_name, i) => store.saveToken({ user_name, refresh_token: `1000.r${i}` })));
  assert.equal(new Set(ids).size, users.length);
  const found = await Promise.all([
    ...users.map((user_name) => store.findToken({ user_name })),
    ...ids.map((id) => store.findTokenById(id)),
    store.findTokenById("0123456789abcdef"),
  ]);
  for (const [i, user_name] of users.entries()) {
    assert.equal(found[i].user_name, user_name);
    assert.equal(found[i].refresh_token, `1000.r${i}`);
    assert.equal(found[users.length + i].id, ids[i]);
    assert.equal(found[users.length + i].user_name, user_name);
  }
  assert.equal(found.at(-1), null);
});

test("a slow call does not hold up a quick one started with it", async (t) => {
  const { dir, store } = await newStore(t);
  await store.saveToken({ user_name: "ann@example.com", refresh_token: "1000.r" });
  // Let the workers go idle and park, as between an application's requests.
  await new Promise((resolve) => setTimeout(resolve, 50));
  const settled = [];
  const slow = Store.create(`sqlite:${join(dir, "passphrase.db")}`, { passphrase: "correct horse battery staple" }).then(
    () => settled.push("key derivation"),
  );
  const quick = store.findToken({ user_name: "ann@example.com" }).then(() => settled.push("lookup"));
  await Promise.all([slow, quick]);
  assert.deepEqual(settled, ["lookup", "key derivation"]);
});
