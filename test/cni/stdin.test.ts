import t from 'tap';
import { Readable } from 'node:stream';
import { MAX_STDIN_BYTES, isTerminal, readStdin } from '../../src/cni/stdin.js';
import { rejectsCni, stdinOf } from './helpers.js';

t.test('reads everything, in chunks', async (t) => {
  const data = Buffer.alloc(300000, 0x61);
  t.same(await readStdin(stdinOf(data, 4096)), data);
  t.equal((await readStdin(stdinOf(undefined))).length, 0, 'empty stdin');
  t.equal((await readStdin(Readable.from(['{"a":', '1}']))).toString(), '{"a":1}', 'string chunks');
});

t.test('exactly the bound is fine; one byte more is code 6', async (t) => {
  t.equal((await readStdin(stdinOf(Buffer.alloc(MAX_STDIN_BYTES, 0x20)))).length, MAX_STDIN_BYTES);
  await rejectsCni(t, readStdin(stdinOf(Buffer.alloc(MAX_STDIN_BYTES + 1, 0x20))), 6, 'config larger than 1048576 bytes', 'stdin holds more than 1048576 bytes');
  await rejectsCni(t, readStdin(stdinOf('12345'), 4), 6, 'config larger than 4 bytes');
});

t.test('it stops reading at the bound', async (t) => {
  let produced = 0;
  const endless = new Readable({
    read() {
      produced += 65536;
      this.push(Buffer.alloc(65536, 0x20));
    },
  });
  await rejectsCni(t, readStdin(endless), 6, 'config larger than 1048576 bytes');
  t.ok(produced < 4 * MAX_STDIN_BYTES, 'did not drain an endless stream');
  t.ok(endless.destroyed, 'the stream is destroyed');
});

t.test('a failing read is code 5', async (t) => {
  const broken = new Readable({
    read() {
      this.destroy(new Error('EIO: i/o error, read'));
    },
  });
  await rejectsCni(t, readStdin(broken), 5, 'error reading from stdin', 'EIO: i/o error, read');
});

t.test('terminals', async (t) => {
  const tty = Object.assign(stdinOf('x'), { isTTY: true });
  t.ok(isTerminal(tty));
  t.notOk(isTerminal(stdinOf('x')));
});
