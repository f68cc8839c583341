#!/usr/bin/env node
// Builds dist/: the CLI and the processes it forks by file path (the users runner's and the
// replicator's worker, the server's session process) as ES module bundles with shared chunks,
// so a run reads a handful of files instead of the ~130 modules of the sources, and what a
// command does not use (IMAP, PostgreSQL, the server, the replicator, remote) stays in chunks
// loaded by dynamic import only when needed. Typechecking is tsc's (`tsc -p tsconfig.build.json`).
//
// Layout: every output file sits one directory below dist/ (dist/cli/main.js,
// dist/users/user-worker.js, dist/server/session-worker.js, dist/chunks/*.js), and each source
// module's import.meta.url is rewritten to the URL its own file would have there
// (src/users/user-runner.ts -> dist/users/user-runner.js, relative to whichever output file
// holds it). So code that finds a file beside itself (a worker to fork, package.json) finds it
// as it did in the one-file-per-module layout, whichever chunk it lands in.
import { build } from 'esbuild';
import { mkdirSync, readdirSync, readFileSync, renameSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { dirname, join, relative, sep } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const src = join(root, 'src');
const dist = join(root, 'dist');

/** Files run as a process of their own: each is an entry point at its source path. */
const ENTRIES = ['cli/main', 'users/user-worker', 'server/session-worker'];

/**
 * Dependencies loaded by every run: bundled, to spare their module resolution. better-sqlite3's
 * JavaScript is bundled too, with its native addon found by the shim below.
 */
const BUNDLED = new Set(['commander', 'smol-toml', 'better-sqlite3']);

/**
 * better-sqlite3 finds its addon through the `bindings` package, which captures a stack trace
 * and tries a dozen paths by require() (about 10 ms of every run). The addon is where
 * better-sqlite3's install puts it, build/Release under the package; anywhere else, `bindings`
 * itself looks, from the package's directory.
 */
const BINDINGS_SHIM = `
const { dirname, join } = require('node:path');
module.exports = function bindings(name) {
  const root = dirname(require.resolve('better-sqlite3/package.json'));
  try {
    return require(join(root, 'build', 'Release', name));
  } catch (err) {
    if (err.code !== 'MODULE_NOT_FOUND') throw err;
    return require('bindings')({ bindings: name, module_root: root });
  }
};
`;

const rewriteImportMetaUrl = {
  name: 'import-meta-url',
  setup(b) {
    b.onLoad({ filter: /\.ts$/ }, (args) => {
      const text = readFileSync(args.path, 'utf8');
      if (!args.path.startsWith(src + sep) || !text.includes('import.meta.url')) return undefined;
      const asBuilt = `../${relative(src, args.path).split(sep).join('/').replace(/\.ts$/, '.js')}`;
      // Same line count, so the source map still points at the right lines.
      return { contents: text.replaceAll('import.meta.url', `new URL(${JSON.stringify(asBuilt)}, import.meta.url).href`), loader: 'ts' };
    });
  },
};

const externalPackages = {
  name: 'external-packages',
  setup(b) {
    b.onResolve({ filter: /^bindings$/ }, (args) => (args.namespace === 'bindings-shim' ? { path: args.path, external: true } : { path: 'bindings', namespace: 'bindings-shim' }));
    b.onLoad({ filter: /.*/, namespace: 'bindings-shim' }, () => ({ contents: BINDINGS_SHIM, loader: 'js' }));
    b.onResolve({ filter: /^[^./]/ }, (args) => {
      if (args.path.startsWith('node:')) return { path: args.path, external: true };
      const name = args.path.startsWith('@') ? args.path.split('/').slice(0, 2).join('/') : args.path.split('/')[0];
      return BUNDLED.has(name) ? undefined : { path: args.path, external: true };
    });
  },
};

// Each process first installs the stack formatter that maps the bundle back to the sources.
const entryWrappers = {
  name: 'entry-wrappers',
  setup(b) {
    b.onResolve({ filter: /^entry:/ }, (args) => ({ path: args.path.slice('entry:'.length), namespace: 'entry' }));
    b.onLoad({ filter: /.*/, namespace: 'entry' }, (args) => ({
      contents: `import './cli/stack-source-map.ts';\nimport './${args.path}.ts';\n`,
      resolveDir: src,
      loader: 'ts',
    }));
  },
};

const result = await build({
  absWorkingDir: root,
  entryPoints: Object.fromEntries(ENTRIES.map((e) => [e, `entry:${e}`])),
  outdir: dist,
  bundle: true,
  splitting: true,
  format: 'esm',
  platform: 'node',
  target: 'node20',
  chunkNames: 'chunks/[name]-[hash]',
  sourcemap: 'linked',
  sourcesContent: false,
  // commander is CommonJS: its require() of Node's modules needs a require in an ES module.
  // The hashbang makes dist/cli/main.js the `mailferry` of package.json's bin (ES modules may
  // all start with one).
  banner: { js: "#!/usr/bin/env node\nimport { createRequire as __mfCreateRequire } from 'node:module'; const require = __mfCreateRequire(import.meta.url);" },
  plugins: [entryWrappers, externalPackages, rewriteImportMetaUrl],
  metafile: true,
  write: false,
  logLevel: 'warning',
});

// Other builds run while tests run dist/ (every `npm test` builds first): a file whose content
// is unchanged is left alone, and a changed one is replaced by a rename, so a process never
// loads a half-written chunk.
for (const file of result.outputFiles) {
  let same = false;
  try {
    same = readFileSync(file.path).equals(file.contents);
  } catch {
    // not there yet
  }
  if (same) continue;
  mkdirSync(dirname(file.path), { recursive: true });
  const temp = `${file.path}.${process.pid}.tmp`;
  writeFileSync(temp, file.contents, { mode: file.path.endsWith('.js') && ENTRIES.some((e) => file.path.endsWith(`${e}.js`)) ? 0o755 : 0o644 });
  renameSync(temp, file.path);
}

// Files of an earlier build that this one did not write (the one-file-per-module layout, old
// chunks): removed once they are 30 minutes old, so a run started from the previous build can
// still load its lazy chunks while this one replaces it.
const written = new Set(Object.keys(result.metafile.outputs).map((p) => join(root, p)));
const cutoff = Date.now() - 30 * 60_000;
(function prune(dir) {
  for (const entry of readdirSync(dir, { withFileTypes: true })) {
    const path = join(dir, entry.name);
    if (entry.isDirectory()) {
      prune(path);
      if (readdirSync(path).length === 0) rmSync(path, { recursive: true, force: true });
    } else if (!written.has(path) && statSync(path).mtimeMs < cutoff) {
      rmSync(path, { force: true });
    }
  }
})(dist);
