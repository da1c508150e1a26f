// The nat-table readers' parsers on bytes the kernel did not write (no root):
// they end on any input, with a view or an Error, never loop or read out of
// bounds. The real tables are in test/kernel/istio-rules.test.ts.
import { randomBytes } from 'node:crypto';
import t from 'tap';
import { natTablesFromNft } from '../../src/sys/nft-rules.js';
import { NO_HOOK, XT_FAMILIES, natViewFromXtables } from '../../src/sys/xtables.js';
import type { Message } from '../../src/sys/netlink.js';

t.test('x_tables blobs: empty, short, zero offsets, random', async (t) => {
  for (const fam of [XT_FAMILIES.ipv4, XT_FAMILIES.ipv6]) {
    t.same(natViewFromXtables(new Uint8Array(0), [0, NO_HOOK, NO_HOOK, NO_HOOK, NO_HOOK], fam), { chains: [], hooked: [], istioRules: 0 }, `${fam.label}: an empty table`);
    t.throws(() => natViewFromXtables(new Uint8Array(fam.entrySize - 1), [0], fam), /runs past the table/, `${fam.label}: a short entry`);
    t.throws(() => natViewFromXtables(new Uint8Array(fam.entrySize * 2), [0], fam), /next_offset 0/, `${fam.label}: next_offset 0 (would loop)`);
    let threw = 0;
    let views = 0;
    for (let i = 0; i < 2000; i++) {
      const blob = randomBytes(fam.entrySize + (i % 7) * 40);
      try {
        if (Array.isArray(natViewFromXtables(blob, [0, NO_HOOK, NO_HOOK, 0, NO_HOOK], fam).hooked)) views++;
      } catch (err) {
        if (!(err instanceof Error)) throw err;
        threw++;
      }
    }
    t.equal(views + threw, 2000, `${fam.label}: every random blob ends with a view or an Error (${threw} refused)`);
  }
});

t.test('nfnetlink dumps: foreign message types, other tables and random bodies give nothing', async (t) => {
  const random: Message[] = Array.from({ length: 500 }, (_, i) => ({ type: i % 2 ? 0xa06 : 0xa03, flags: 2, body: new Uint8Array(randomBytes(i % 97)) }));
  t.same(natTablesFromNft(random, random).flatMap((x) => x.view.hooked), [], 'random bodies hook nothing');
  t.same(natTablesFromNft([], []), []);
});
