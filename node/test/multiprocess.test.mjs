// N Node processes running the Zoho SDK with TokenvaultStore on one expired token, released
// together by a start-gate file, against a token endpoint that takes 0.3 s to answer and
// rotates refresh tokens: exactly one refresh request, and the same access token everywhere.

import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { writeFileSync } from "node:fs";
import { join } from "node:path";
import { test } from "node:test";
import { fileURLToPath } from "node:url";

import { newKey, sampleToken, scratch, startFakeZoho, tokenvault } from "./helpers.mjs";

const WORKER = fileURLToPath(new URL("./fixtures/sdk_worker.mjs", import.meta.url));
const PROCESSES = 6;

/** Starts one worker; resolves `ready` when it waits at the gate, `done` with its JSON. */
function startWorker(args, env) {
  const child = spawn(process.execPath, [WORKER, ...args], {
    env: { ...process.env, ...env },
    stdio: ["ignore", "pipe", "pipe"],
  });
  let stdout = "";
  let stderr = "";
  let markReady;
  const ready = new Promise((resolve) => (markReady = resolve));
  child.stdout.on("data", (chunk) => {
    stdout += chunk;
    if (stdout.includes("ready\n")) markReady();
  });
  child.stderr.on("data", (chunk) => (stderr += chunk));
  const done = new Promise((resolve, reject) => {
    child.on("error", reject);
    child.on("close", (status) => {
      markReady();
      if (status !== 0) reject(new Error(`worker exited ${status}: ${stderr}`));
      else resolve(JSON.parse(stdout.split("\n").filter(Boolean).at(-1)));
    });
  });
  return { child, ready, done };
}

test(`${PROCESSES} SDK processes on one expired token make one refresh request`, async (t) => {
  const fake = await startFakeZoho(t, 0.3);
  const dir = scratch(t);
  const key = newKey();
  const uri = `sqlite:${join(dir, "tokens.db")}`;
  const user = "ann@example.com:700000001";
  const store = await tokenvault.Store.create(uri, { key });
  const refresh = await fake.issueRefreshToken("ann@example.com");
  const id = await store.saveToken({
    ...sampleToken(user, { refresh, expiresInMs: -60_000 }),
    api_domain: fake.url,
  });
  const before = await fake.stats();

  const gate = join(dir, "start-gate");
  const workers = Array.from({ length: PROCESSES }, () =>
    startWorker([fake.url, uri, user, gate, dir], { TOKENVAULT_KEY: key.toString("base64") }),
  );
  t.after(() => workers.forEach((w) => w.child.kill()));
  await Promise.all(workers.map((w) => w.ready));
  writeFileSync(gate, "go");
  const results = await Promise.all(workers.map((w) => w.done));

  const after = await fake.stats();
  assert.equal(after.refresh_token - before.refresh_token, 1, "refresh requests");
  assert.equal(after.refused - before.refused, 0);
  assert.equal(after.unauthorized, 0);
  const record = await store.findTokenById(id);
  assert.notEqual(record.refresh_token, refresh);
  for (const result of results) {
    assert.equal(result.access, record.access_token);
    assert.equal(result.status, 200);
  }
  assert.equal(new Set(results.map((r) => r.access)).size, 1);
  assert.equal((await store.getTokens()).length, 1, "one record, no duplicate");
});
