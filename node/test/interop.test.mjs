// One store, three front ends: a store made by the CLI opens from Node and the other way
// round, and so does one made by the Python package. These need the `tokenvault` CLI and the
// Python package: without them the tests are skipped (with the reason printed), or fail when
// TOKENVAULT_REQUIRE_SERVICES=1, as in CI.

import assert from "node:assert/strict";
import { join } from "node:path";
import { test } from "node:test";

import { findCli, findPython, newKey, requireTool, run, sampleToken, scratch, tokenvault } from "./helpers.mjs";

const { Store } = tokenvault;

const CLI_REASON =
  "the tokenvault CLI was not found (TOKENVAULT_CLI, `tokenvault` on PATH, or target/debug/tokenvault)";
const PYTHON_REASON =
  "the tokenvault Python package is not installed (`python3 -c 'import tokenvault'` fails; TOKENVAULT_PYTHON names another Python)";

async function cli(command, args, env, input) {
  const result = await run(command, args, { env, input });
  assert.equal(result.status, 0, `tokenvault ${args.join(" ")}: ${result.stderr}`);
  return result.stdout;
}

test("a store made by the CLI (raw key) opens from Node, and Node's writes show in the CLI", async (t) => {
  const command = findCli();
  if (!requireTool(t, command !== null, CLI_REASON)) return;
  const dir = scratch(t);
  const key = newKey();
  const uri = `sqlite:${join(dir, "tokens.db")}`;
  const env = { TOKENVAULT_STORE: uri, TOKENVAULT_KEY: key.toString("base64"), TOKENVAULT_PASSPHRASE: "" };
  await cli(command, ["init", "--key", "env"], env);
  const token = sampleToken("cli@example.com");
  const id = (await cli(command, ["save"], env, JSON.stringify(token))).trim();
  assert.match(id, /^\S+$/);

  const store = await Store.open(uri, { key });
  assert.deepEqual(await store.findTokenById(id), {
    id, ...token, grant_token: null, redirect_url: null,
  });
  const nodeId = await store.saveToken(sampleToken("node@example.com"));
  await store.saveToken({ id, access_token: "1000.access.from-node" });

  const printed = JSON.parse(await cli(command, ["get", "--json", "--user", "node@example.com"], env));
  assert.equal(printed.id, nodeId);
  assert.equal(printed.refresh_token, "1000.refresh.node@example.com");
  const field = await cli(command, ["get", id, "--field", "access_token"], env);
  assert.equal(field.trim(), "1000.access.from-node");
  assert.match(await cli(command, ["verify"], env), /2 record\(s\) ok, 0 failed/);
});

test("a passphrase store made by Node opens in the CLI, and the CLI's writes show in Node", async (t) => {
  const command = findCli();
  if (!requireTool(t, command !== null, CLI_REASON)) return;
  const dir = scratch(t);
  const uri = `file:${join(dir, "tokens.tv")}`;
  const passphrase = "node and cli share this";
  const store = await Store.create(uri, { passphrase });
  const id = await store.saveToken(sampleToken("ann@example.com"));
  const env = { TOKENVAULT_STORE: uri, TOKENVAULT_PASSPHRASE: passphrase, TOKENVAULT_KEY: "" };

  const printed = JSON.parse(await cli(command, ["get", "--json", id], env));
  assert.equal(printed.user_name, "ann@example.com");
  assert.equal(printed.client_secret, sampleToken("x").client_secret);
  const cliId = (await cli(command, ["save"], env, JSON.stringify({ user_name: "cli@example.com", grant_token: "1000.grant.cli" }))).trim();
  const reopened = await Store.open(uri, { passphrase });
  assert.equal((await reopened.findToken({ user_name: "cli@example.com" })).id, cliId);
  assert.equal((await reopened.findTokenById(cliId)).grant_token, "1000.grant.cli");
  const wrong = await run(command, ["verify"], { env: { ...env, TOKENVAULT_PASSPHRASE: "not it" } });
  // 4: the CLI's exit status for a wrong passphrase or key.
  assert.equal(wrong.status, 4);
});

test("a store made by the Python package opens from Node, and the other way round", async (t) => {
  const python = findPython();
  if (!requireTool(t, python !== null, PYTHON_REASON)) return;
  const dir = scratch(t);
  const key = newKey();
  const env = { TOKENVAULT_TEST_KEY: key.toString("hex") };

  // Python creates and saves; Node reads.
  const fromPython = `sqlite:${join(dir, "python.db")}`;
  const create = `
import json, os, sys, tokenvault
store = tokenvault.Store.create(sys.argv[1], key=bytes.fromhex(os.environ["TOKENVAULT_TEST_KEY"]))
print(store.save_token(json.loads(sys.argv[2])))
`;
  const token = sampleToken("py@example.com");
  const made = await run(python, ["-c", create, fromPython, JSON.stringify(token)], { env });
  assert.equal(made.status, 0, made.stderr);
  const id = made.stdout.trim();
  const store = await Store.open(fromPython, { key });
  assert.deepEqual(await store.findTokenById(id), { id, ...token, grant_token: null, redirect_url: null });
  await store.saveToken({ id, access_token: "1000.access.from-node" });

  // Node creates and saves; Python reads (and sees Node's update of its own store).
  const fromNode = `sqlite:${join(dir, "node.db")}`;
  const nodeStore = await Store.create(fromNode, { key });
  const nodeId = await nodeStore.saveToken(sampleToken("node@example.com"));
  const read = `
import json, os, sys, tokenvault
key = bytes.fromhex(os.environ["TOKENVAULT_TEST_KEY"])
a = tokenvault.Store.open(sys.argv[1], key=key).find_token({"user_name": "node@example.com"})
b = tokenvault.Store.open(sys.argv[2], key=key).find_token_by_id(sys.argv[3])
print(json.dumps([a, b]))
`;
  const result = await run(python, ["-c", read, fromNode, fromPython, id], { env });
  assert.equal(result.status, 0, result.stderr);
  const [a, b] = JSON.parse(result.stdout);
  assert.equal(a.id, nodeId);
  assert.equal(a.refresh_token, "1000.refresh.node@example.com");
  assert.equal(b.access_token, "1000.access.from-node");
  assert.equal(b.refresh_token, token.refresh_token);
});
