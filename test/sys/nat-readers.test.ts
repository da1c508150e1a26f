// The nat-table readers' parsers on bytes the kernel did not write (no root):
// a table built here by the UAPI layouts reads as expected, and every mutation
// of it ends with a view or the parser's own Error (never a RangeError from
// reading past the bytes, never a hang). The real tables are in
// test/kernel/istio-rules.test.ts.
import { randomInt } from 'node:crypto';
import t from 'tap';
import { dormantTables, natTablesFromNft } from '../../src/sys/nft-rules.js';
import { NO_HOOK, XT_FAMILIES, natViewFromXtables } from '../../src/sys/xtables.js';
import type { Message } from '../../src/sys/netlink.js';

// --- legacy x_tables (struct ipt_entry, 112 bytes; xt_entry_target header 32 bytes) ---
const ACCEPT = -2; // -NF_ACCEPT - 1
const RETURN = -5; // XT_RETURN

function entry(target: '' | 'ERROR', data: (view: DataView, at: number) => void, targetSize: number): Uint8Array {
  const fam = XT_FAMILIES.ipv4;
  const b = new Uint8Array(fam.entrySize + targetSize);
  const v = new DataView(b.buffer);
  v.setUint16(fam.targetOffsetAt, fam.entrySize, true);
  v.setUint16(fam.targetOffsetAt + 2, b.length, true);
  v.setUint16(fam.entrySize, targetSize, true);
  Buffer.from(b.buffer).write(target, fam.entrySize + 2, 'latin1');
  data(v, fam.entrySize + 32);
  return b;
}
const standard = (verdict: number): Uint8Array => entry('', (v, at) => v.setInt32(at, verdict, true), 40);
const error = (name: string): Uint8Array => entry('ERROR', (v, at) => Buffer.from(v.buffer).write(name, at, 'latin1'), 64);

/** A nat table: PREROUTING, INPUT, OUTPUT (-j ISTIO_OUTPUT), POSTROUTING, then the user chain ISTIO_OUTPUT with one rule. */
function natBlob(): { blob: Uint8Array; hooks: number[] } {
  const s = 152; // a standard entry
  const e = 176; // an ERROR entry
  const istioFirstRule = 5 * s + e; // after 4 policies, the jump and the chain's head
  const parts = [standard(ACCEPT), standard(ACCEPT), standard(istioFirstRule), standard(ACCEPT), standard(ACCEPT), error('ISTIO_OUTPUT'), standard(RETURN), standard(RETURN), error('ERROR')];
  const blob = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
  let at = 0;
  for (const p of parts) {
    blob.set(p, at);
    at += p.length;
  }
  return { blob, hooks: [0, s, NO_HOOK, 2 * s, 4 * s] };
}

t.test('x_tables: a table built from the layouts reads as expected', async (t) => {
  const { blob, hooks } = natBlob();
  t.same(natViewFromXtables(blob, hooks, XT_FAMILIES.ipv4), { chains: ['PREROUTING', 'INPUT', 'OUTPUT', 'POSTROUTING', 'ISTIO_OUTPUT'], hooked: ['ISTIO_OUTPUT'], istioRules: 1 });
  t.same(natViewFromXtables(new Uint8Array(0), [0, NO_HOOK, NO_HOOK, NO_HOOK, NO_HOOK], XT_FAMILIES.ipv4), { chains: [], hooked: [], istioRules: 0 }, 'an empty table');
  t.throws(() => natViewFromXtables(blob.subarray(0, 100), hooks, XT_FAMILIES.ipv4), /^x_tables blob: entry at 0 runs past/, 'a short entry');
  t.throws(() => natViewFromXtables(new Uint8Array(224), hooks, XT_FAMILIES.ipv4), /next_offset 0/, 'next_offset 0 (would loop)');
});

t.test('x_tables: every mutation of the table ends with a view or the parser\'s own Error', async (t) => {
  const { blob, hooks } = natBlob();
  let views = 0;
  let refused = 0;
  for (let i = 0; i < 5000; i++) {
    const b = new Uint8Array(blob);
    for (let k = randomInt(1, 4); k > 0; k--) b[randomInt(b.length)] = randomInt(256);
    const cut = i % 5 === 0 ? b.subarray(0, randomInt(b.length)) : b;
    try {
      natViewFromXtables(cut, hooks, XT_FAMILIES.ipv4);
      views++;
    } catch (err) {
      if (!(err instanceof Error) || !/^x_tables blob: /.test(err.message)) throw err;
      refused++;
    }
  }
  t.equal(views + refused, 5000, `${views} read, ${refused} refused`);
  t.ok(views > 0 && refused > 0, 'both outcomes happen');
});

// --- nf_tables messages (nfgenmsg + netlink attributes) ---
type A = [type: number, data: Uint8Array | A[]];
function attrs(list: A[]): Uint8Array {
  const parts = list.map(([type, data]) => {
    const payload = data instanceof Uint8Array ? data : attrs(data);
    const b = new Uint8Array((4 + payload.length + 3) & ~3);
    const v = new DataView(b.buffer);
    v.setUint16(0, 4 + payload.length, true);
    v.setUint16(2, data instanceof Uint8Array ? type : type | 0x8000, true);
    b.set(payload, 4);
    return b;
  });
  return Buffer.concat(parts);
}
const str = (s: string): Uint8Array => Buffer.from(`${s}\0`);
const be = (n: number): Uint8Array => {
  const b = new Uint8Array(4);
  new DataView(b.buffer).setInt32(0, n, false);
  return b;
};
const msg = (m: number, list: A[]): Message => ({ type: (10 << 8) | m, flags: 2, body: Buffer.concat([new Uint8Array([2, 0, 0, 0]), attrs(list)]) });
const chainMsgs = (): Message[] => [
  msg(3, [[1, str('nat')], [3, str('OUTPUT')], [4, [[1, be(3)], [2, be(-100)]]], [7, str('nat')]]),
  msg(3, [[1, str('nat')], [3, str('ISTIO_OUTPUT')]]),
];
const jump = (chain: string, to: string): Message =>
  msg(6, [[1, str('nat')], [2, str(chain)], [4, [[1, [[1, str('immediate')], [2, [[1, be(0)], [2, [[2, [[1, be(-3)], [2, str(to)]]]]]]]]]]]]);

t.test('nf_tables: messages built from the attribute layouts read as expected', async (t) => {
  const tables = natTablesFromNft(chainMsgs(), [jump('OUTPUT', 'ISTIO_OUTPUT'), msg(6, [[1, str('nat')], [2, str('ISTIO_OUTPUT')]])]);
  t.same(tables, [{ table: 'nat', view: { chains: ['OUTPUT', 'ISTIO_OUTPUT'], hooked: ['ISTIO_OUTPUT'], istioRules: 1 } }]);
  t.same(natTablesFromNft(chainMsgs(), [jump('ISTIO_OUTPUT', 'ISTIO_OUTPUT')])[0]?.view.hooked, [], 'a jump from a chain on no hook');
  t.same(natTablesFromNft(chainMsgs(), [jump('OUTPUT', 'OTHER')])[0]?.view.hooked, [], 'a jump to another chain');
  const dormant = dormantTables([msg(0, [[1, str('nat')], [2, be(1)]]), msg(0, [[1, str('filter')], [2, be(0)]])]);
  t.same([...dormant], ['nat'], 'the dormant flag read');
  t.same(natTablesFromNft(chainMsgs(), [jump('OUTPUT', 'ISTIO_OUTPUT')], dormant), [], 'a dormant table hooks nothing');
  t.same(natTablesFromNft([], []), []);
});

t.test('nf_tables: every mutation of the messages reads without throwing', async (t) => {
  const base = [...chainMsgs(), jump('OUTPUT', 'ISTIO_OUTPUT')];
  let hooked = 0;
  for (let i = 0; i < 5000; i++) {
    const msgs = base.map((m) => {
      const body = new Uint8Array(m.body); // a copy (Buffer#slice would share the bytes)
      if (randomInt(2)) body[randomInt(body.length)] = randomInt(256);
      return { ...m, body: i % 5 === 0 ? body.subarray(0, randomInt(body.length)) : body };
    });
    if (natTablesFromNft(msgs.slice(0, 2), msgs.slice(2)).some((x) => x.view.hooked.length > 0)) hooked++;
  }
  t.ok(hooked > 0 && hooked < 5000, `${hooked} of 5000 mutations still read as hooked, the rest not`);
});
