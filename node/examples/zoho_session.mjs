// A Zoho CRM SDK session with TokenvaultStore, against a local fake Zoho accounts server:
//
//   1. sign-in with a grant token (the SDK exchanges it, looks up the user, saves the token);
//   2. a restart: the SDK signs in from the store, without a request;
//   3. the access token expires, and four processes start at once: one refresh request, the
//      same new access token in each;
//   4. a look at the store's files: no token, secret or user name in them.
//
//   node examples/zoho_session.mjs          (after npm install && npm run build)
//
// Needs python3 for the fake server (../python/tests/fake_zoho.py).

import { spawn } from "node:child_process";
import { randomBytes } from "node:crypto";
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { setTimeout as sleep } from "node:timers/promises";
import { fileURLToPath } from "node:url";

import * as sdk from "@zohocrm/nodejs-sdk-8.0";
import { Store } from "tokenvault";
import { TokenvaultStore } from "tokenvault/zoho";

const CLIENT_ID = "1000.FAKECLIENT";
const CLIENT_SECRET = "fake-client-secret-0123456789";
const FAKE_ZOHO = fileURLToPath(new URL("../../python/tests/fake_zoho.py", import.meta.url));
const PROCESSES = 4;

/** Initializes the SDK with `token`, the store, and the fake server's environment. */
async function initialize(base, token, store, resources) {
  const environment = new sdk.Environment(base, `${base}/oauth/v2/token`, base);
  const builder = await new sdk.InitializeBuilder();
  await builder.environment(environment).token(token).store(store).resourcePath(resources).initialize();
  return token.getAccessToken();
}

async function stats(base) {
  return (await fetch(`${base}/__stats`)).json();
}

// One of the processes of step 3: `zoho_session.mjs --worker BASE URI USER GATE DIR`.
if (process.argv[2] === "--worker") {
  const [base, uri, user, gate, dir] = process.argv.slice(3);
  const store = await TokenvaultStore.open(uri); // the key from TOKENVAULT_KEY
  console.log("ready");
  while (!existsSync(gate)) await sleep(2);
  const token = new sdk.OAuthBuilder().userSignature(new sdk.UserSignature(user)).build();
  console.log(await initialize(base, token, store, dir));
  process.exit(0);
}

const server = spawn("python3", [FAKE_ZOHO, "0.3"], { stdio: ["ignore", "pipe", "inherit"] });
const base = await new Promise((resolve) => server.stdout.once("data", (d) => resolve(String(d).trim())));
const dir = mkdtempSync(join(tmpdir(), "tokenvault-example-"));
try {
  const key = randomBytes(32);
  const uri = `sqlite:${join(dir, "tokens.db")}`;
  console.log(`fake Zoho at ${base}; store ${uri}\n`);

  // 1. Sign-in with a grant token.
  const code = (await (await fetch(`${base}/__grant?user=ann@example.com`, { method: "POST" })).json()).code;
  const first = new sdk.OAuthBuilder()
    .clientId(CLIENT_ID)
    .clientSecret(CLIENT_SECRET)
    .grantToken(code)
    .redirectURL("https://app.example.com/oauth/callback")
    .build();
  await initialize(base, first, await TokenvaultStore.open(uri, { key }), dir);
  const user = first.getUserSignature().getName();
  console.log(`1. signed in as ${user}; token id ${first.getId()}`);
  console.log(`   requests so far: ${JSON.stringify(await stats(base))}`);

  // 2. A restart: only the user name is known; the token comes from the store.
  const before = await stats(base);
  const again = new sdk.OAuthBuilder().userSignature(new sdk.UserSignature(user)).build();
  await initialize(base, again, new TokenvaultStore(uri, { key }), dir);
  const after = await stats(base);
  const sent = Object.keys(after).reduce((n, k) => n + after[k] - before[k], 0);
  console.log(`2. restarted: same access token ${again.getAccessToken() === first.getAccessToken()}, requests sent ${sent}`);

  // 3. The token expires; four processes start together.
  const plain = await Store.open(uri, { key });
  await plain.saveToken({ id: first.getId(), expiry_time: Date.now() - 1000 });
  const gate = join(dir, "gate");
  const workers = Array.from({ length: PROCESSES }, () => {
    const child = spawn(process.execPath, [fileURLToPath(import.meta.url), "--worker", base, uri, user, gate, dir], {
      env: { ...process.env, TOKENVAULT_KEY: key.toString("base64") },
      stdio: ["ignore", "pipe", "inherit"],
    });
    let out = "";
    const ready = new Promise((resolve) => {
      child.stdout.on("data", (d) => {
        out += d;
        if (out.startsWith("ready\n")) resolve();
      });
      child.on("close", resolve);
    });
    const done = new Promise((resolve) => child.on("close", () => resolve(out.split("\n")[1])));
    return { ready, done };
  });
  await Promise.all(workers.map((w) => w.ready)); // each has loaded the SDK and opened the store
  const refreshesBefore = (await stats(base)).refresh_token;
  writeFileSync(gate, "go");
  const tokens = await Promise.all(workers.map((w) => w.done));
  const refreshes = (await stats(base)).refresh_token - refreshesBefore;
  console.log(`3. ${PROCESSES} processes: ${refreshes} refresh request(s), ${new Set(tokens).size} distinct access token(s)`);

  // 4. What is on disk.
  const record = await plain.findTokenById(first.getId());
  const secrets = [record.access_token, record.refresh_token, record.grant_token, CLIENT_SECRET, user];
  const files = readdirSync(dir, { recursive: true })
    .filter((f) => f.startsWith("tokens.db") && statSync(join(dir, f)).isFile());
  const leaks = files.filter((f) => secrets.some((s) => readFileSync(join(dir, f)).includes(s)));
  console.log(`4. store files ${files.join(", ")}: ${leaks.length === 0 ? "no plaintext secret in any" : `PLAINTEXT in ${leaks}`}`);
  if (leaks.length > 0 || refreshes !== 1 || new Set(tokens).size !== 1 || sent !== 0) process.exitCode = 1;
} finally {
  server.kill();
  rmSync(dir, { recursive: true, force: true });
}
