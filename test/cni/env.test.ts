import t, { type Test } from 'tap';
import {
  MAX_ARGS_PAIRS,
  MAX_CONTAINER_ID_BYTES,
  MAX_NETNS_BYTES,
  MAX_POD_FIELD_LENGTH,
  REQUIRED_ENV,
  parseCniArgs,
  podFromArgs,
  readCniEnv,
  type CniEnvVar,
} from '../../src/cni/env.js';
import { CniError } from '../../src/cni/errors.js';
import { CNI_COMMANDS, type CniCommand } from '../../src/cni/versions.js';

const full: Record<CniEnvVar, string> = {
  CNI_COMMAND: 'ADD',
  CNI_CONTAINERID: '3f6940ab5ab43bc522569d15b23f8c1bbde1d7678b080398506924fc01d72755',
  CNI_NETNS: '/var/run/netns/cni-1234',
  CNI_IFNAME: 'eth0',
  CNI_ARGS: 'IgnoreUnknown=1;K8S_POD_NAMESPACE=default;K8S_POD_NAME=web-0;K8S_POD_INFRA_CONTAINER_ID=3f69;K8S_POD_UID=0d5c3a8e',
  CNI_PATH: '/opt/cni/bin:/usr/lib/cni',
};

function envError(t: Test, fn: () => unknown, msg: string, details?: string | RegExp): void {
  try {
    fn();
    t.fail(`expected CNI error 4 "${msg}"`);
  } catch (err) {
    t.ok(err instanceof CniError, 'a CniError');
    const e = err as CniError;
    t.equal(e.code, 4, 'code 4');
    t.equal(e.msg, msg);
    if (details instanceof RegExp) t.match(e.details ?? '', details);
    else if (details !== undefined) t.equal(e.details, details);
  }
}

// The table this module keeps, spelled out once more as the spec says it.
const expectedRequired: Record<CniCommand, CniEnvVar[]> = {
  ADD: ['CNI_COMMAND', 'CNI_CONTAINERID', 'CNI_NETNS', 'CNI_IFNAME', 'CNI_PATH'],
  CHECK: ['CNI_COMMAND', 'CNI_CONTAINERID', 'CNI_NETNS', 'CNI_IFNAME', 'CNI_PATH'],
  DEL: ['CNI_COMMAND', 'CNI_CONTAINERID', 'CNI_IFNAME', 'CNI_PATH'],
  GC: ['CNI_COMMAND', 'CNI_PATH'],
  STATUS: ['CNI_COMMAND', 'CNI_PATH'],
  VERSION: ['CNI_COMMAND'],
};
const optionalVars: CniEnvVar[] = ['CNI_CONTAINERID', 'CNI_NETNS', 'CNI_IFNAME', 'CNI_ARGS', 'CNI_PATH'];

t.test('the requirement table', async (t) => {
  t.same(REQUIRED_ENV, expectedRequired);
});

for (const command of CNI_COMMANDS) {
  t.test(`${command}: each variable, required or not`, async (t) => {
    const required = expectedRequired[command];
    const env = { ...full, CNI_COMMAND: command };
    t.equal(readCniEnv(env).command, command, 'the full set is accepted');
    for (const name of optionalVars) {
      for (const absent of [undefined, '']) {
        const without = { ...env, [name]: absent };
        if (required.includes(name)) {
          envError(t, () => readCniEnv(without), `required env variables [${name}] missing`);
        } else {
          t.doesNotThrow(() => readCniEnv(without), `${name} ${absent === undefined ? 'unset' : 'empty'} is fine for ${command}`);
        }
      }
    }
    const minimal = Object.fromEntries(required.map((name) => [name, env[name]]));
    const got = readCniEnv(minimal);
    t.equal(got.command, command, 'only the required variables are enough');
    t.same(got.args, new Map(), 'no CNI_ARGS: no args');
  });
}

t.test('all missing variables are named in one error, in table order', async (t) => {
  envError(t, () => readCniEnv({ CNI_COMMAND: 'ADD' }), 'required env variables [CNI_CONTAINERID,CNI_NETNS,CNI_IFNAME,CNI_PATH] missing');
  envError(t, () => readCniEnv({ CNI_COMMAND: 'DEL' }), 'required env variables [CNI_CONTAINERID,CNI_IFNAME,CNI_PATH] missing');
  envError(t, () => readCniEnv({ CNI_COMMAND: 'GC' }), 'required env variables [CNI_PATH] missing');
});

t.test('CNI_COMMAND missing, empty or unknown', async (t) => {
  envError(t, () => readCniEnv({}), 'required env variables [CNI_COMMAND] missing');
  envError(t, () => readCniEnv({ ...full, CNI_COMMAND: '' }), 'required env variables [CNI_COMMAND] missing');
  envError(t, () => readCniEnv({ ...full, CNI_COMMAND: 'GET' }), 'unknown CNI_COMMAND', 'CNI_COMMAND is "GET"; known: ADD, DEL, CHECK, GC, STATUS, VERSION');
  envError(t, () => readCniEnv({ ...full, CNI_COMMAND: 'add' }), 'unknown CNI_COMMAND', /"add"/);
  envError(t, () => readCniEnv({ ...full, CNI_COMMAND: 'X'.repeat(5000) }), 'unknown CNI_COMMAND', /^CNI_COMMAND is "X{16}\.\.\."/);
});

t.test('what each command gets', async (t) => {
  const add = readCniEnv(full);
  t.equal(add.containerId, full.CNI_CONTAINERID);
  t.equal(add.netns, '/var/run/netns/cni-1234');
  t.equal(add.ifname, 'eth0');
  t.same(add.path, ['/opt/cni/bin', '/usr/lib/cni']);
  t.equal(add.args.get('K8S_POD_NAME'), 'web-0');
  const del = readCniEnv({ ...full, CNI_COMMAND: 'DEL', CNI_NETNS: '' });
  t.equal(del.netns, '', 'DEL with the netns gone');
  const gc = readCniEnv({ ...full, CNI_COMMAND: 'GC' });
  t.same([gc.containerId, gc.netns, gc.ifname, gc.args.size], ['', '', '', 0], 'GC reads only what it uses');
  const version = readCniEnv({ CNI_COMMAND: 'VERSION', CNI_IFNAME: 'this is not checked' });
  t.equal(version.ifname, '');
});

t.test('CNI_PATH', async (t) => {
  t.same(readCniEnv({ ...full, CNI_PATH: '/a::/b:' }).path, ['/a', '/b'], 'empty entries dropped');
  envError(t, () => readCniEnv({ ...full, CNI_PATH: ':::' }), 'CNI_PATH names no directory', 'CNI_PATH is ":::"');
  envError(t, () => readCniEnv({ ...full, CNI_PATH: '/x'.repeat(40000) }), 'CNI_PATH is longer than 65536 bytes');
});

t.test('CNI_CONTAINERID as libcni validates it', async (t) => {
  for (const ok of ['a', 'Z9', '3f6940ab5ab4', 'pod_1.test-2', '0']) {
    t.equal(readCniEnv({ ...full, CNI_CONTAINERID: ok }).containerId, ok, ok);
  }
  for (const bad of ['-abc', '_abc', '.abc', 'a b', 'a/b', 'a:b', 'a;b', 'ä', 'a\tb', 'a$b']) {
    envError(t, () => readCniEnv({ ...full, CNI_CONTAINERID: bad }), 'invalid characters in CNI_CONTAINERID', `CNI_CONTAINERID is ${JSON.stringify(bad)}; it must match ^[a-zA-Z0-9][a-zA-Z0-9_.-]*$`);
  }
  t.doesNotThrow(() => readCniEnv({ ...full, CNI_CONTAINERID: 'a'.repeat(MAX_CONTAINER_ID_BYTES) }));
  envError(t, () => readCniEnv({ ...full, CNI_CONTAINERID: 'a'.repeat(MAX_CONTAINER_ID_BYTES + 1) }), `CNI_CONTAINERID is longer than ${MAX_CONTAINER_ID_BYTES} bytes`);
  t.doesNotThrow(() => readCniEnv({ ...full, CNI_COMMAND: 'GC', CNI_CONTAINERID: '-not-checked-for-GC' }));
});

t.test('CNI_IFNAME as libcni validates it', async (t) => {
  for (const ok of ['eth0', 'net1', 'a', '123456789012345', 'veth-x.1_2']) {
    t.equal(readCniEnv({ ...full, CNI_IFNAME: ok }).ifname, ok, ok);
  }
  envError(t, () => readCniEnv({ ...full, CNI_IFNAME: '1234567890123456' }), 'CNI_IFNAME is too long', 'interface names are at most 15 bytes, got 16');
  envError(t, () => readCniEnv({ ...full, CNI_IFNAME: 'ééééééééé' }), 'CNI_IFNAME is too long', 'interface names are at most 15 bytes, got 18');
  envError(t, () => readCniEnv({ ...full, CNI_IFNAME: '.' }), 'CNI_IFNAME is . or ..');
  envError(t, () => readCniEnv({ ...full, CNI_IFNAME: '..' }), 'CNI_IFNAME is . or ..');
  for (const bad of ['eth/0', 'eth:0', 'eth 0', 'eth\t0', 'eth\n0', 'eth\u00a00']) {
    envError(t, () => readCniEnv({ ...full, CNI_IFNAME: bad }), 'CNI_IFNAME contains / or : or whitespace characters', `CNI_IFNAME is ${JSON.stringify(bad)}`);
  }
});

t.test('CNI_NETNS is bounded', async (t) => {
  t.doesNotThrow(() => readCniEnv({ ...full, CNI_NETNS: '/' + 'n'.repeat(MAX_NETNS_BYTES - 1) }));
  envError(t, () => readCniEnv({ ...full, CNI_NETNS: '/' + 'n'.repeat(MAX_NETNS_BYTES) }), 'CNI_NETNS is longer than 4096 bytes');
});

t.test('CNI_ARGS', async (t) => {
  t.same([...parseCniArgs('')], []);
  t.same([...parseCniArgs('A=1;B=2')], [['A', '1'], ['B', '2']]);
  t.same([...parseCniArgs('A=;B=x')], [['A', ''], ['B', 'x']], 'empty value');
  t.same([...parseCniArgs('A=1;;B=2;')], [['A', '1'], ['B', '2']], 'empty segments skipped');
  t.same([...parseCniArgs('A=1;A=2')], [['A', '2']], 'last value wins');
  t.same([...parseCniArgs('MAC=aa:bb:cc:dd:ee:ff;IP=10.0.0.1/24')].length, 2);
  const bad: Array<[string, string]> = [
    ['FOO', 'pair 1 is "FOO"'],
    ['A=1;FOO', 'pair 2 is "FOO"'],
    ['=x', 'pair 1 is "=x"'],
    ['A=b=c', 'pair 1 is "A=b=c"'],
  ];
  for (const [raw, where] of bad) {
    envError(t, () => parseCniArgs(raw), 'invalid pair in CNI_ARGS', `${where}; pairs are KEY=VALUE separated by ';'`);
    envError(t, () => readCniEnv({ ...full, CNI_ARGS: raw }), 'invalid pair in CNI_ARGS');
  }
  const many = Array.from({ length: MAX_ARGS_PAIRS + 1 }, (_, i) => `K${i}=v`).join(';');
  envError(t, () => parseCniArgs(many), 'CNI_ARGS has more than 256 pairs');
  t.equal(parseCniArgs(many.split(';').slice(0, MAX_ARGS_PAIRS).join(';')).size, MAX_ARGS_PAIRS);
  envError(t, () => parseCniArgs(`K=${'v'.repeat(40000)}`), 'CNI_ARGS is longer than 32768 bytes');
});

t.test('the pod of the call', async (t) => {
  const args = readCniEnv(full).args;
  t.equal(podFromArgs(args), 'default/web-0');
  t.equal(podFromArgs(new Map([['K8S_POD_NAME', 'x']])), undefined, 'needs both');
  const long = podFromArgs(new Map([['K8S_POD_NAMESPACE', 'n'.repeat(300)], ['K8S_POD_NAME', 'p'.repeat(300)]]));
  t.equal(long?.length, MAX_POD_FIELD_LENGTH + 3, 'bounded');
  t.ok(long?.endsWith('...'));
});
