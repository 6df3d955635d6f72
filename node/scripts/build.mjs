// Builds the addon and puts it beside index.js as tokenvault.<platform>.node.
//
//   node scripts/build.mjs [--debug] [-p PACKAGE ...]
//
// It runs `cargo build -p tokenvault-node` in the workspace without `--target`, so the
// artifacts land in the workspace's own target/release (or target/debug): the tokenvault
// library is compiled once for this addon and the CLI (`-p tokenvault-cli` builds both in the
// same cargo run; ci.sh does that). `napi build` always passes `--target <host triple>`,
// which moves everything to target/<triple>/ and compiles the library a second time; it is
// kept as `npm run build:napi` for cross-compiling and for regenerating native.d.ts.

import { spawnSync } from "node:child_process";
import { copyFileSync, renameSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";

const here = dirname(dirname(fileURLToPath(import.meta.url)));
const args = process.argv.slice(2);
const debug = args.includes("--debug");
const extra = [];
for (let i = 0; i < args.length; i++) {
  if (args[i] === "-p" && i + 1 < args.length) extra.push("-p", args[++i]);
  else if (args[i] !== "--debug") fail(`unknown argument ${args[i]}`);
}

function fail(message) {
  console.error(`build: ${message}`);
  process.exit(1);
}

const cargo = process.env.CARGO ?? "cargo";
const build = [
  "build",
  "--locked",
  "--message-format=json-render-diagnostics",
  "-p",
  "tokenvault-node",
  ...extra,
];
if (!debug) build.push("--release");
console.error(`+ ${cargo} ${build.join(" ")}`);
const run = spawnSync(cargo, build, {
  cwd: here,
  stdio: ["ignore", "pipe", "inherit"],
  maxBuffer: 256 * 1024 * 1024,
  encoding: "utf8",
});
if (run.error) fail(`cannot run ${cargo}: ${run.error.message}`);
if (run.status !== 0) fail(`cargo build failed (exit ${run.status})`);

// The cdylib cargo reports for this package (its path depends on the platform's naming).
let library = null;
for (const line of run.stdout.split("\n")) {
  if (!line.startsWith("{")) continue;
  const message = JSON.parse(line);
  if (
    message.reason === "compiler-artifact" &&
    message.target?.name === "tokenvault_node" &&
    message.target.kind.includes("cdylib")
  ) {
    library = message.filenames.find((f) => /\.(so|dylib|dll)$/.test(f)) ?? null;
  }
}
if (library === null) fail("cargo built no tokenvault_node library");

const target = join(here, `tokenvault.${platformName()}.node`);
// Copy then rename: a process that has the old addon loaded keeps its mapping intact.
copyFileSync(library, `${target}.tmp`);
renameSync(`${target}.tmp`, target);
console.error(`built ${target}`);

/** napi-rs's platform name, which index.js loads: e.g. linux-x64-gnu, darwin-arm64. */
function platformName() {
  const { platform, arch } = process;
  if (platform === "linux") {
    const glibc = process.report?.getReport()?.header?.glibcVersionRuntime;
    return `linux-${arch}-${glibc ? "gnu" : "musl"}`;
  }
  if (platform === "win32") return `win32-${arch}-msvc`;
  return `${platform}-${arch}`;
}
