// The `leasehold` command as shipped: sidecar/cli/main.ts and everything it imports, bundled by
// esbuild into dist/cli/ (issue 19: Node 20 has no module compile cache, and resolving, reading
// and linking some 1,500 files was most of `leasehold serve`'s start). `npm run build` runs it
// after tsc; `node scripts/bundle.mjs` alone rebuilds the bundle.
//
//   dist/cli/leasehold.mjs   the bin: imports v8-flags.mjs, then main.mjs (ESM runs them in that order)
//   dist/cli/v8-flags.mjs    sidecar/cli/v8-flags.ts alone: the V8 flags, set before any other code runs
//   dist/cli/main.mjs        the program; what a command loads on demand (`await import`) is a chunk
//   dist/cli/chunk-*.mjs     loaded only by the commands that import them (code splitting)
//   dist/cli/meta.json       esbuild's metafile: which sources are in which file (test/cli/bundle.test.ts)
//
// Packages with WebAssembly or native files read from their own folder, or with requires esbuild
// cannot follow, stay outside the bundle and load from node_modules as before (EXTERNAL).
import { existsSync, readFileSync } from "node:fs";
import { chmod, mkdir, rm, writeFile } from "node:fs/promises";
import { createRequire } from "node:module";
import { dirname, join } from "node:path";
import { build } from "esbuild";

const OUT = "dist/cli";

/** Loaded from node_modules at run time, never bundled. */
export const EXTERNAL = [
  "@cedar-policy/cedar-wasm", // reads cedar_wasm_bg.wasm beside its own file
  "libpg-query", // PostgreSQL's parser, WebAssembly
  "koffi", // native (.node); sidecar/attest/libc.ts requires it by createRequire
  "ssh2", // optional native parts
  "cpu-features", // native
];

// Bundled CommonJS calls require() for Node's own modules; an ES module has no require of its own.
const REQUIRE_SHIM =
  'import { createRequire as __lhCreateRequire } from "node:module";\nconst require = __lhCreateRequire(import.meta.url);';

/** main.ts's first import, the V8 flags, stays a module of its own: see the bin below. */
const v8FlagsApart = {
  name: "v8-flags-apart",
  setup(b) {
    b.onResolve({ filter: /^\.\/v8-flags\.js$/ }, (args) =>
      args.importer.endsWith("sidecar/cli/main.ts") ? { path: "./v8-flags.mjs", external: true } : undefined,
    );
  },
};

/** Whether Node would load this file as CommonJS (by its extension, else its package's "type"). */
function isCommonJs(file) {
  if (file.endsWith(".cjs")) return true;
  if (file.endsWith(".mjs") || !file.endsWith(".js")) return false;
  for (let dir = dirname(file); dir !== dirname(dir); dir = dirname(dir)) {
    const pkg = join(dir, "package.json");
    if (existsSync(pkg)) return JSON.parse(readFileSync(pkg, "utf8")).type !== "module";
  }
  return true;
}

/**
 * `await import("yaml")` of a CommonJS package, split into a chunk of its own, would give only
 * `default` (esbuild issue 3245: an ES module chunk cannot have exports known only at run time).
 * Such an import gets an ES module in front of the package instead, exporting statically each
 * name the package exports (read by requiring it here), and the package itself as `default`: what
 * Node's own import of CommonJS gives.
 */
const commonJsDynamicImports = {
  name: "commonjs-dynamic-imports",
  setup(b) {
    b.onResolve({ filter: /^[^./]/ }, async (args) => {
      if (args.kind !== "dynamic-import" || args.pluginData?.facade) return undefined;
      if (EXTERNAL.some((e) => args.path === e || args.path.startsWith(`${e}/`))) return undefined;
      const real = await b.resolve(args.path, {
        kind: args.kind,
        resolveDir: args.resolveDir,
        importer: args.importer,
        pluginData: { facade: true },
      });
      if (real.errors.length > 0 || real.external || !isCommonJs(real.path)) return undefined;
      const names = Object.keys(createRequire(real.path)(real.path)).filter(isBindingName);
      return { path: real.path, namespace: "commonjs-facade", pluginData: { names } };
    });
    b.onLoad({ filter: /.*/, namespace: "commonjs-facade" }, (args) => ({
      contents: [
        `const m = require(${JSON.stringify(args.path)});`,
        "export default m;",
        args.pluginData.names.length > 0 ? `export const { ${args.pluginData.names.join(", ")} } = m;` : "",
      ].join("\n"),
      resolveDir: dirname(args.path),
      loader: "js",
    }));
  },
};

function isBindingName(name) {
  if (name === "default" || !/^[A-Za-z_$][\w$]*$/.test(name)) return false;
  try {
    new Function(`let ${name};`);
    return true;
  } catch {
    return false; // a reserved word
  }
}

const BIN = `#!/usr/bin/env node
// The leasehold command (scripts/bundle.mjs). The V8 flags first: ES modules run in the order
// they are imported, so they hold before any of the program's code is loaded.
import "./v8-flags.mjs";
import "./main.mjs";
`;

export async function bundle() {
  await rm(OUT, { recursive: true, force: true });
  await mkdir(OUT, { recursive: true });
  const common = {
    bundle: true,
    format: "esm",
    platform: "node",
    target: "node20",
    outExtension: { ".js": ".mjs" },
    legalComments: "none",
    logLevel: "warning",
  };
  await build({ ...common, entryPoints: { "v8-flags": "sidecar/cli/v8-flags.ts" }, outdir: OUT });
  const r = await build({
    ...common,
    entryPoints: { main: "sidecar/cli/main.ts" },
    outdir: OUT,
    splitting: true,
    chunkNames: "chunk-[hash]",
    external: EXTERNAL,
    banner: { js: REQUIRE_SHIM },
    plugins: [v8FlagsApart, commonJsDynamicImports],
    metafile: true,
  });
  await writeFile(`${OUT}/meta.json`, JSON.stringify(r.metafile));
  await writeFile(`${OUT}/leasehold.mjs`, BIN);
  await chmod(`${OUT}/leasehold.mjs`, 0o755);
}

if (import.meta.url === `file://${process.argv[1]}`) await bundle();
