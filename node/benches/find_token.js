// findToken on 4,000 tokens: tokenvault's TokenvaultStore against the Zoho SDK's own
// FileStore, in the same run, both as the SDK calls them (an OAuthToken with a user
// signature, filled in place). Prints per-call times and the ratio.
//
//   npm run bench            (after npm run build)
//   BENCH_TOKENS=4000 BENCH_SECONDS=3 BENCH_ROUNDS=5 node benches/find_token.js
//
// The FileStore's CSV is written directly in its own format (inserting 4,000 rows through
// FileStore.saveToken rewrites the file each time); the tokenvault store is filled through
// its API. Lookups pick users at random, so FileStore scans half its file on average.
//
// The stores are measured in BENCH_ROUNDS interleaved rounds (every store once a round), and
// the table gives each one's median round: on a shared virtual machine one store's whole
// measurement could otherwise land in a slow minute and the other's in a fast one. The
// ratio is the median of the rounds' own ratios.

"use strict";

const { randomBytes, randomInt } = require("node:crypto");
const { mkdtempSync, rmSync, writeFileSync, statSync } = require("node:fs");
const { tmpdir } = require("node:os");
const { join } = require("node:path");

const TOKENS = Number(process.env.BENCH_TOKENS ?? 4000);
const SECONDS = Number(process.env.BENCH_SECONDS ?? 3);
const ROUNDS = Number(process.env.BENCH_ROUNDS ?? 5);
if (!Number.isInteger(ROUNDS) || ROUNDS < 1) throw new Error("BENCH_ROUNDS must be a whole number, 1 or more");

// Zoho's shapes: a 35-character client id, a 42-character client secret, 70-character
// refresh and access tokens ("1000." and two 32-hex-digit parts).
const CLIENT_ID = `1000.${randomBytes(15).toString("hex").toUpperCase()}`;
const CLIENT_SECRET = randomBytes(21).toString("hex");
const zohoToken = () => `1000.${randomBytes(16).toString("hex")}.${randomBytes(16).toString("hex")}`;

function record(i) {
  return {
    user_name: `user${i}@example.com:700000001`,
    client_id: CLIENT_ID,
    client_secret: CLIENT_SECRET,
    refresh_token: zohoToken(),
    access_token: zohoToken(),
    expiry_time: String(Date.now() + 3_600_000),
    redirect_url: "https://app.example.com/oauth/callback",
    api_domain: "https://www.zohoapis.com",
  };
}

/** Runs `call` for about `seconds` (after a warm-up); resolves to { calls, perCallUs }. */
async function measure(call, seconds) {
  for (let i = 0; i < 20; i++) await call();
  let calls = 0;
  const start = process.hrtime.bigint();
  const end = start + BigInt(Math.round(seconds * 1e9));
  let now = start;
  while (now < end) {
    await call();
    calls++;
    now = process.hrtime.bigint();
  }
  return { calls, perCallUs: Number(now - start) / 1e3 / calls };
}

/** Lookups `width` at a time for about `seconds`; resolves to { calls, perCallUs }. */
async function measureConcurrent(call, width, seconds) {
  return measure(() => Promise.all(Array.from({ length: width }, call)), seconds).then(
    ({ calls, perCallUs }) => ({ calls: calls * width, perCallUs: perCallUs / width }),
  );
}

function median(values) {
  const sorted = [...values].sort((a, b) => a - b);
  const mid = sorted.length >> 1;
  return sorted.length % 2 === 1 ? sorted[mid] : (sorted[mid - 1] + sorted[mid]) / 2;
}

function format(us) {
  return us >= 1000 ? `${(us / 1000).toFixed(2)} ms` : `${us.toFixed(1)} µs`;
}

async function main() {
  const sdk = await import("@zohocrm/nodejs-sdk-8.0");
  const { TokenvaultStore } = await import("tokenvault/zoho");
  const dir = mkdtempSync(join(tmpdir(), "tokenvault-bench-"));
  try {
    const records = Array.from({ length: TOKENS }, (_, i) => record(i));

    // The SDK's FileStore: its CSV, header and rows as FileStore.setToken writes them.
    const csv = join(dir, "sdk_tokens.csv");
    const header = "id,user_name,client_id,client_secret,refresh_token,access_token,grant_token,expiry_time,redirect_url,api_domain";
    const rows = records.map((r, i) =>
      [i + 1, r.user_name, r.client_id, r.client_secret, r.refresh_token, r.access_token, "", r.expiry_time, r.redirect_url, r.api_domain].join(","),
    );
    writeFileSync(csv, [header, ...rows].join("\n"));
    const fileStore = new sdk.FileStore(csv);

    // tokenvault: SQLite, raw key.
    const uri = `sqlite:${join(dir, "tokens.db")}`;
    const vault = await TokenvaultStore.open(uri, { key: randomBytes(32) });
    const plain = await vault.store();
    for (let i = 0; i < records.length; i += 200) {
      await Promise.all(records.slice(i, i + 200).map((r) => plain.saveToken(r)));
    }
    if ((await plain.getTokens()).length !== TOKENS) throw new Error("the store does not hold every token");

    const query = () =>
      new sdk.OAuthBuilder().userSignature(new sdk.UserSignature(records[randomInt(TOKENS)].user_name)).build();
    const check = async (store) => {
      const token = query();
      const found = await store.findToken(token);
      if (found !== token || !found.getAccessToken()) throw new Error("findToken missed");
    };

    const plainCheck = async () => {
      const found = await plain.findToken({ user_name: records[randomInt(TOKENS)].user_name });
      if (found === null) throw new Error("findToken missed");
    };
    const stores = [
      ["SDK FileStore.findToken", (s) => measure(() => check(fileStore), s)],
      ["TokenvaultStore.findToken", (s) => measure(() => check(vault), s)],
      ["TokenvaultStore.findToken, 8 in flight", (s) => measureConcurrent(() => check(vault), 8, s)],
      ["Store.findToken (plain objects)", (s) => measure(plainCheck, s)],
    ].map(([name, run]) => ({ name, run, perCallUs: [], calls: 0 }));
    for (let round = 0; round < ROUNDS; round++) {
      for (const row of stores) {
        const { calls, perCallUs } = await row.run(SECONDS / ROUNDS);
        row.calls += calls;
        row.perCallUs.push(perCallUs);
      }
    }
    const [file, tv] = stores;
    const ratios = (row) => row.perCallUs.map((us, round) => file.perCallUs[round] / us);

    const table = [["store", "per call (median round)", "calls", "vs FileStore (median, range)"]];
    for (const row of stores) {
      const r = ratios(row);
      table.push([
        row.name,
        format(median(row.perCallUs)),
        String(row.calls),
        row === file ? "1×" : `${median(r).toFixed(0)}× (${Math.min(...r).toFixed(0)}–${Math.max(...r).toFixed(0)}×)`,
      ]);
    }
    const widths = table[0].map((_, c) => Math.max(...table.map((row) => row[c].length)));
    console.log(
      `findToken by user name on ${TOKENS} tokens (CSV ${(statSync(csv).size / 1024).toFixed(0)} KiB), ${ROUNDS} rounds of ${SECONDS / ROUNDS} s a store, Node ${process.version}`,
    );
    for (const [i, row] of table.entries()) {
      console.log(`| ${row.map((cell, c) => (c === 0 ? cell.padEnd(widths[c]) : cell.padStart(widths[c]))).join(" | ")} |`);
      if (i === 0) console.log(`|${widths.map((w, c) => (c === 0 ? "-".repeat(w + 2) : `${"-".repeat(w + 1)}:`)).join("|")}|`);
    }
    console.log(
      `ratio (FileStore / TokenvaultStore, one call at a time): ${median(ratios(tv)).toFixed(0)}× (median of ${ROUNDS} rounds; target ≥ 100×)`,
    );
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

main().catch((error) => {
  console.error(error);
  process.exit(1);
});
