// Shared by the tests: the fake Zoho server, scratch directories, keys, and the tools the
// interop tests need (the CLI, the Python package).

import assert from "node:assert/strict";
import { spawn, spawnSync } from "node:child_process";
import { randomBytes } from "node:crypto";
import { accessSync, constants, mkdtempSync, readdirSync, readFileSync, rmSync, statSync } from "node:fs";
import { createRequire } from "node:module";
import { tmpdir } from "node:os";
import { delimiter, join } from "node:path";
import { fileURLToPath } from "node:url";

export const require = createRequire(import.meta.url);
export const tokenvault = require("../index.js");

export const CLIENT_ID = "1000.FAKECLIENT";
export const CLIENT_SECRET = "fake-client-secret-0123456789";

/** The fake Zoho accounts + API server the Python package's tests use too. */
export const FAKE_ZOHO = fileURLToPath(new URL("../../python/tests/fake_zoho.py", import.meta.url));

/** A fresh scratch directory, removed after the test. */
export function scratch(t) {
  const dir = mkdtempSync(join(tmpdir(), "tokenvault-node-"));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  return dir;
}

/** A random 32-byte raw key. */
export function newKey() {
  return randomBytes(32);
}

/**
 * Starts the fake server (`refreshDelay` seconds before each refresh answer) and stops it
 * after the test. Resolves to { url, tokenUrl, stats(), grant(user) }.
 */
export async function startFakeZoho(t, refreshDelay = 0) {
  const child = spawn("python3", [FAKE_ZOHO, String(refreshDelay)], {
    stdio: ["ignore", "pipe", "inherit"],
  });
  t.after(() => child.kill());
  const url = await new Promise((resolve, reject) => {
    let out = "";
    child.on("error", reject);
    child.on("exit", (code) => reject(new Error(`fake_zoho.py exited (${code}) before its URL`)));
    child.stdout.on("data", (chunk) => {
      out += chunk;
      const line = out.split("\n")[0];
      if (out.includes("\n")) resolve(line.trim());
    });
  });
  assert.match(url, /^http:\/\/127\.0\.0\.1:\d+$/);
  return {
    url,
    tokenUrl: `${url}/oauth/v2/token`,
    async stats() {
      return (await fetch(`${url}/__stats`)).json();
    },
    async grant(user) {
      const answer = await fetch(`${url}/__grant?user=${encodeURIComponent(user)}`, { method: "POST" });
      return (await answer.json()).code;
    },
    /** A live refresh token for `user`: a grant code spent at the token endpoint. */
    async issueRefreshToken(user) {
      const code = await this.grant(user);
      const form = new URLSearchParams({
        grant_type: "authorization_code",
        code,
        client_id: CLIENT_ID,
        client_secret: CLIENT_SECRET,
      });
      const answer = await (await fetch(`${url}/oauth/v2/token`, { method: "POST", body: form })).json();
      assert.match(answer.refresh_token, /^1000\.refresh\./);
      return answer.refresh_token;
    },
  };
}

/** Every file under `dir`, recursively. */
export function filesUnder(dir) {
  const files = [];
  for (const entry of readdirSync(dir, { withFileTypes: true })) {
    const path = join(dir, entry.name);
    if (entry.isDirectory()) files.push(...filesUnder(path));
    else files.push(path);
  }
  return files;
}

/** Asserts that none of `secrets` is in any file under `dir` (as UTF-8 or UTF-16). */
export function assertNoPlaintext(dir, secrets) {
  const files = filesUnder(dir);
  assert.ok(files.length > 0, "the store wrote no file");
  for (const file of files) {
    const bytes = readFileSync(file);
    for (const secret of secrets) {
      assert.ok(typeof secret === "string" && secret.length >= 8, `weak probe ${secret}`);
      for (const encoded of [Buffer.from(secret, "utf8"), Buffer.from(secret, "utf16le")]) {
        assert.equal(bytes.indexOf(encoded), -1, `${file} holds a secret in plaintext`);
      }
    }
  }
}

/**
 * Whether a tool a test needs is there. When it is not: with TOKENVAULT_REQUIRE_SERVICES=1
 * (CI) the test fails; otherwise it is skipped with the reason printed.
 */
export function requireTool(t, available, reason) {
  if (available) return true;
  if (process.env.TOKENVAULT_REQUIRE_SERVICES === "1") {
    assert.fail(`${reason} (required: TOKENVAULT_REQUIRE_SERVICES=1)`);
  }
  console.log(`SKIPPED ${t.name}: ${reason}`);
  t.skip(reason);
  return false;
}

function isExecutable(path) {
  try {
    accessSync(path, constants.X_OK);
    return statSync(path).isFile();
  } catch {
    return false;
  }
}

/** The CLI: TOKENVAULT_CLI, else `tokenvault` on PATH, else target/debug/tokenvault. */
export function findCli() {
  if (process.env.TOKENVAULT_CLI) {
    return isExecutable(process.env.TOKENVAULT_CLI) ? process.env.TOKENVAULT_CLI : null;
  }
  for (const dir of (process.env.PATH ?? "").split(delimiter)) {
    if (dir && isExecutable(join(dir, "tokenvault"))) return join(dir, "tokenvault");
  }
  const debug = fileURLToPath(new URL("../../target/debug/tokenvault", import.meta.url));
  return isExecutable(debug) ? debug : null;
}

/** The Python that has the tokenvault package: TOKENVAULT_PYTHON, else python3. */
export function findPython() {
  const python = process.env.TOKENVAULT_PYTHON ?? "python3";
  const probe = spawnSync(python, ["-c", "import tokenvault"], { stdio: "ignore" });
  return probe.status === 0 ? python : null;
}

/** Runs a command to completion; resolves to { status, stdout, stderr }. */
export function run(command, args, { input, env } = {}) {
  return new Promise((resolve, reject) => {
    const child = spawn(command, args, {
      env: { ...process.env, ...env },
      stdio: ["pipe", "pipe", "pipe"],
    });
    let stdout = "";
    let stderr = "";
    child.stdout.on("data", (c) => (stdout += c));
    child.stderr.on("data", (c) => (stderr += c));
    child.on("error", reject);
    child.on("close", (status) => resolve({ status, stdout, stderr }));
    child.stdin.end(input ?? "");
  });
}

/** A token record for tests, expiring `expiresInMs` from now (negative: already expired). */
export function sampleToken(user, { refresh = `1000.refresh.${user}`, expiresInMs = 3_600_000 } = {}) {
  return {
    user_name: user,
    client_id: CLIENT_ID,
    client_secret: CLIENT_SECRET,
    refresh_token: refresh,
    access_token: `1000.access.${user}`,
    expiry_time: String(Date.now() + expiresInMs),
    api_domain: "https://www.zohoapis.eu",
  };
}
