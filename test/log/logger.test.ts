import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { PassThrough } from 'node:stream';
import t from 'tap';
import { createLogger, LogFileRefused } from '../../src/log/logger.js';

const dir = mkdtempSync(join(tmpdir(), 'meshlane-log-'));
t.teardown(() => rmSync(dir, { recursive: true, force: true }));

function capture(): { stream: PassThrough; text: () => string } {
  const stream = new PassThrough();
  const chunks: Buffer[] = [];
  stream.on('data', (c: Buffer) => chunks.push(c));
  return { stream, text: () => Buffer.concat(chunks).toString('utf8') };
}

t.test('JSON lines with the fixed fields go to the file and to stderr', async (t) => {
  const file = join(dir, 'a', 'b', 'meshlane.log');
  const err = capture();
  const log = createLogger({ level: 'info', file, fields: { containerId: 'abc', command: 'ADD', pod: 'ns/p' }, stderrStream: err.stream });
  log.info('registered', { ips: ['10.0.0.1'] });
  log.debug('not at info level');
  log.child({ step: 'maps' }).warn('slow');
  await log.close();
  const lines = readFileSync(file, 'utf8').trim().split('\n').map((l) => JSON.parse(l) as Record<string, unknown>);
  t.equal(lines.length, 2);
  t.match(lines[0], { level: 'info', message: 'registered', containerId: 'abc', command: 'ADD', pod: 'ns/p', ips: ['10.0.0.1'] });
  t.match(lines[1], { level: 'warn', message: 'slow', step: 'maps', containerId: 'abc' });
  t.type(lines[0]?.['timestamp'], 'string');
  t.equal(err.text().trim().split('\n').length, 2, 'the same two lines on stderr');
});

t.test('an unopenable file falls back to stderr with a warning', async (t) => {
  const err = capture();
  const log = createLogger({ level: 'info', file: '/proc/self/meshlane-no/x.log', stderrStream: err.stream });
  log.info('still logged');
  await log.close();
  t.match(err.text(), /cannot open the log file/);
  t.match(err.text(), /still logged/);
});

t.test('secrets never reach a line', async (t) => {
  const file = join(dir, 'secrets.log');
  const log = createLogger({ level: 'debug', file, stderr: false });
  log.info('api call', {
    token: 'abc.def.ghi',
    headers: { authorization: 'Bearer s3cr3t-token' },
    detail: 'GET failed with Bearer eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiJ4In0.c2lnbmF0dXJl',
    kubeconfig: { users: [{ user: { 'client-key-data': 'LS0tLS1CRUdJTi' } }] },
  });
  await log.close();
  const text = readFileSync(file, 'utf8');
  for (const secret of ['abc.def.ghi', 's3cr3t-token', 'eyJhbGciOiJSUzI1NiJ9', 'LS0tLS1CRUdJTi']) {
    t.notOk(text.includes(secret), `${secret} is redacted`);
  }
  t.match(text, /\[redacted\]/);
});

t.test('redaction copies: the logged objects are not changed', async (t) => {
  const log = createLogger({ level: 'info', stderr: false });
  const config = { kubeconfig: { token: 'keep-me' }, prevResult: { ips: [] } };
  log.info('config', { config });
  await log.close();
  t.equal(config.kubeconfig.token, 'keep-me');
});

t.test('a log file that is a directory, a device or this process stdout/stderr is refused', async (t) => {
  t.throws(() => createLogger({ level: 'info', file: dir, stderr: false }), LogFileRefused, 'a directory');
  t.throws(() => createLogger({ level: 'info', file: '/dev/null', stderr: false }), LogFileRefused, 'a device');
  t.throws(() => createLogger({ level: 'info', file: '/proc/self/fd/2', stderr: false }), LogFileRefused, 'stderr');
  const fresh = join(dir, 'new', 'made.log');
  const log = createLogger({ level: 'info', file: fresh, stderr: false });
  log.info('a path that can become a regular file is fine');
  await log.close();
  t.match(readFileSync(fresh, 'utf8'), /can become/);
});

t.test('every line is written before the call returns (synchronously)', async (t) => {
  const file = join(dir, 'sync.log');
  const log = createLogger({ level: 'debug', file, stderr: false });
  for (let i = 0; i < 100; i++) log.debug('line', { i });
  t.equal(readFileSync(file, 'utf8').trim().split('\n').length, 100, 'all there before close');
  await log.close();
});
