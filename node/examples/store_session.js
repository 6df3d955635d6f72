// The Store API on its own (no Zoho SDK): create a passphrase store, save and find tokens as
// plain objects, verify, rotate the data key, reopen, and show the errors a caller branches on.
//
//   node examples/store_session.js          (after npm install && npm run build)

"use strict";

const { mkdtempSync, rmSync } = require("node:fs");
const { tmpdir } = require("node:os");
const { join } = require("node:path");

const { NotFound, Store, WrongKey } = require("tokenvault");

async function main() {
  const dir = mkdtempSync(join(tmpdir(), "tokenvault-example-"));
  try {
    const uri = `sqlite:${join(dir, "tokens.db")}`;
    const store = await Store.create(uri, { passphrase: "correct horse battery staple" });
    console.log(`created ${uri} (store ${store.storeId})`);

    const id = await store.saveToken({
      user_name: "ann@example.com",
      client_id: "1000.CLIENTID",
      client_secret: "client-secret",
      refresh_token: "1000.refresh.ann",
      access_token: "1000.access.ann",
      expiry_time: Date.now() + 3_600_000,
      api_domain: "https://www.zohoapis.eu",
    });
    console.log(`saved ${id}`);

    // Concurrent calls are fine: each runs on one of the addon's worker threads.
    const [byUser, byAccess, all] = await Promise.all([
      store.findToken({ user_name: "ann@example.com" }),
      store.findToken({ access_token: "1000.access.ann" }),
      store.getTokens(),
    ]);
    console.log(`found by user name: ${byUser.id}, by access token: ${byAccess.id}, ${all.length} record(s)`);

    // An update merges: fields left out keep their stored values.
    await store.saveToken({ id, access_token: "1000.access.ann.2" });
    const updated = await store.findTokenById(id);
    console.log(`updated: access ${updated.access_token}, refresh still ${updated.refresh_token}`);

    console.log("verify:", await store.verify());
    console.log("rotate:", await store.rotate());

    try {
      await Store.open(uri, { passphrase: "wrong" });
    } catch (error) {
      console.log(`wrong passphrase: ${error instanceof WrongKey} (${error.code}: ${error.message})`);
    }
    try {
      await store.deleteToken("no-such-id");
    } catch (error) {
      console.log(`unknown id: ${error instanceof NotFound} (${error.code})`);
    }
    const reopened = await Store.open(uri, { passphrase: "correct horse battery staple" });
    console.log(`reopened: ${(await reopened.findTokenById(id)).access_token}`);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

main().catch((error) => {
  console.error(error);
  process.exit(1);
});
