// Malformed input through the whole dispatcher: each gives its code and exit status 1,
// stdout is exactly one JSON error document, and no stack trace ever reaches it.
import t, { type Test } from 'tap';
import { INTERNAL_ERROR_MSG } from '../../src/cni/errors.js';
import { MAX_STDIN_BYTES } from '../../src/cni/stdin.js';
import { baseEnv, conf, readFixture, run, stdoutShape, type RunOptions } from './helpers.js';

const STACK_RE = /\n\s+at |\.(ts|js):\d+:\d+|node:internal/;

async function expectError(t: Test, opts: RunOptions, code: number, msg?: string, name = msg ?? `code ${code}`): Promise<void> {
  const r = await run(opts);
  t.equal(r.code, 1, `${name}: exit 1`);
  t.equal(stdoutShape(r.stdout), 'one-document', `${name}: one JSON document`);
  t.equal(r.writes, 1, `${name}: one write`);
  t.equal(r.json?.['code'], code, `${name}: code ${code}`);
  if (msg !== undefined) t.equal(r.json?.['msg'], msg, `${name}: msg`);
  t.notMatch(r.stdout, STACK_RE, `${name}: no stack`);
  t.same(Object.keys(r.json ?? {}).filter((k) => !['cniVersion', 'code', 'msg', 'details'].includes(k)), [], `${name}: only the spec's keys`);
  t.equal(r.loggers.at(-1)?.logger.closed, 1, `${name}: log closed`);
}

const full = conf({ prevResult: readFixture('bridge-host-local-1.0.0.json') });

t.test('truncated JSON, at every length', async (t) => {
  for (let n = 0; n < full.length; n += 7) {
    const cut = full.slice(0, n);
    const r = await run({ env: baseEnv, stdin: cut });
    t.equal(r.code, 1);
    t.equal(r.json?.['code'], 6, `cut at ${n}`);
    t.match(String(r.json?.['msg']), n === 0 ? 'network config is empty' : 'invalid JSON in network config');
    t.equal(stdoutShape(r.stdout), 'one-document');
  }
  await expectError(t, { env: baseEnv, stdin: full.slice(0, 40) }, 6, 'invalid JSON in network config');
});

t.test('more than 1 MiB', async (t) => {
  const big = conf({ padding: 'x'.repeat(MAX_STDIN_BYTES) });
  await expectError(t, { env: baseEnv, stdin: big }, 6, 'config larger than 1048576 bytes');
  await expectError(t, { env: { ...baseEnv, CNI_COMMAND: 'DEL' }, stdin: Buffer.alloc(8 * MAX_STDIN_BYTES, 0x7b) }, 6, 'config larger than 1048576 bytes', 'DEL too');
  const justFits = conf({ padding: 'x'.repeat(MAX_STDIN_BYTES - conf({ padding: '' }).length) });
  t.equal(Buffer.byteLength(justFits), MAX_STDIN_BYTES);
  const r = await run({ env: baseEnv, stdin: justFits });
  t.equal(r.code, 0, 'exactly 1 MiB is accepted');
});

t.test('binary garbage', async (t) => {
  let seed = 2024;
  const rand = (): number => {
    seed = (seed * 1103515245 + 12345) & 0x7fffffff;
    return seed & 0xff;
  };
  for (let i = 0; i < 40; i++) {
    const len = 1 + ((i * 97) % 3000);
    const garbage = Buffer.from(Array.from({ length: len }, rand));
    if (garbage[0] === 0x7b || garbage[0] === 0x5b) garbage[0] = 0x00; // never accidentally JSON
    const r = await run({ env: baseEnv, stdin: garbage });
    t.equal(r.code, 1, `garbage ${i}`);
    t.ok([6].includes(Number(r.json?.['code'])), `garbage ${i}: code 6`);
    t.equal(stdoutShape(r.stdout), 'one-document');
  }
  await expectError(t, { env: baseEnv, stdin: Buffer.alloc(64, 0) }, 6, 'invalid JSON in network config', 'NUL bytes');
  await expectError(t, { env: baseEnv, stdin: Buffer.from([0xc3, 0x28, 0x7b, 0x7d]) }, 6, 'network config is not valid UTF-8');
  await expectError(t, { env: baseEnv, stdin: Buffer.concat([Buffer.from(conf().slice(0, -1)), Buffer.from([0, 0x7d])]) }, 6, 'invalid JSON in network config', 'NUL inside the object');
  const r = await run({ env: baseEnv, stdin: '{"cniVersion":"1.0.0","name":"x","type":"meshlane","k":"\u0001"}' });
  t.equal(r.json?.['details'], 'control character U+0001 in string at line 1 column 57 (character 56)', 'control characters are named, not echoed');
  t.notMatch(r.stdout, /\\u0001/);
});

t.test('wrong types', async (t) => {
  const cases: Array<[string, number, string]> = [
    ['[]', 7, 'network config is not a JSON object'],
    ['"meshlane"', 7, 'network config is not a JSON object'],
    ['null', 7, 'network config is not a JSON object'],
    ['{"cniVersion":1.0,"name":"x","type":"meshlane"}', 7, 'cniVersion is not a string'],
    ['{"cniVersion":"1.0.0","name":["x"],"type":"meshlane"}', 7, 'name is not a string'],
    ['{"cniVersion":"1.0.0","name":"x","type":{}}', 7, 'type is not a string'],
    ['{"cniVersion":"1.0.0","name":"x","type":"meshlane","prevResult":[]}', 7, 'prevResult is not a JSON object'],
    ['{"cniVersion":"1.0.0","name":"x","type":"meshlane","runtimeConfig":"annotations"}', 7, 'runtimeConfig is not a JSON object'],
    ['{"cniVersion":"1.0.0","name":"x","type":"meshlane","capabilities":[true]}', 7, 'capabilities is not a JSON object'],
    ['{"cniVersion":"1.0.0","name":"x","type":"meshlane","args":1}', 7, 'args is not a JSON object'],
    ['{"cniVersion":"1.0.0","name":"x","type":"meshlane","prevResult":{"ips":[{"address":4}]}}', 7, 'prevResult.ips[0].address is not a string'],
    ['{"cniVersion":"1.0.0","name":"x","type":"meshlane","prevResult":{"interfaces":[{"sandbox":1}]}}', 7, 'prevResult.interfaces[0].sandbox is not a string'],
    ['{"cniVersion":"0.2.0","name":"x","type":"meshlane"}', 1, 'incompatible CNI versions: config is "0.2.0", meshlane supports 0.3.0, 0.3.1, 0.4.0, 1.0.0, 1.1.0'],
    ['{"name":"x","type":"meshlane"}', 1, 'incompatible CNI versions: config is absent (meaning "0.1.0"), meshlane supports 0.3.0, 0.3.1, 0.4.0, 1.0.0, 1.1.0'],
    [`{"cniVersion":"1.0.0","name":"x","type":"meshlane","prevResult":${JSON.stringify(readFixture('bridge-host-local-0.2.0.json'))}}`, 1, 'prevResult is a CNI 0.2.0 result (ip4/ip6), which meshlane cannot read'],
  ];
  for (const [stdin, code, msg] of cases) await expectError(t, { env: baseEnv, stdin }, code, msg);
});

t.test('missing and bad env', async (t) => {
  const cases: Array<[Record<string, string | undefined>, string]> = [
    [{ ...baseEnv, CNI_COMMAND: undefined }, 'required env variables [CNI_COMMAND] missing'],
    [{ ...baseEnv, CNI_CONTAINERID: '' }, 'required env variables [CNI_CONTAINERID] missing'],
    [{ ...baseEnv, CNI_NETNS: undefined }, 'required env variables [CNI_NETNS] missing'],
    [{ ...baseEnv, CNI_IFNAME: undefined, CNI_PATH: undefined }, 'required env variables [CNI_IFNAME,CNI_PATH] missing'],
    [{ ...baseEnv, CNI_COMMAND: 'DEL', CNI_PATH: '' }, 'required env variables [CNI_PATH] missing'],
    [{ CNI_COMMAND: 'GC' }, 'required env variables [CNI_PATH] missing'],
    [{ ...baseEnv, CNI_COMMAND: 'delete' }, 'unknown CNI_COMMAND'],
    [{ ...baseEnv, CNI_CONTAINERID: '../../etc' }, 'invalid characters in CNI_CONTAINERID'],
    [{ ...baseEnv, CNI_IFNAME: 'a-very-long-ifname' }, 'CNI_IFNAME is too long'],
    [{ ...baseEnv, CNI_ARGS: 'K8S_POD_NAME' }, 'invalid pair in CNI_ARGS'],
  ];
  for (const [env, msg] of cases) await expectError(t, { env, stdin: conf() }, 4, msg);
});

t.test('a handler bug never puts a stack on stdout', async (t) => {
  const r = await run({
    env: baseEnv,
    stdin: conf(),
    handlers: {
      add: () => {
        const e = new Error('multi\nline\n    at fake (file.ts:1:2)');
        return Promise.reject(e);
      },
    },
  });
  t.equal(r.json?.['code'], 999);
  t.equal(r.json?.['msg'], INTERNAL_ERROR_MSG);
  t.equal(stdoutShape(r.stdout), 'one-document', 'newlines in a message stay escaped inside the one line');
});
