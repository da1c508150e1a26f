// The sockmap fault probe in each pinned Debian kernel (qemu, one guest at a
// time), judged by the installer's decision, against what docs/datapath.md
// ("Sockmap fault probe") says of each kernel. Any change fails, a fault that
// goes away included: then update the table there and this list.
import t from 'tap';
import { KERNEL_PINS } from '../../scripts/kernels/pins.js';
import { probeInGuest } from '../../scripts/kernels/sockmap-probe.js';
import { decideSockmap, sockmapFaults, type SockmapFault } from '../../src/install/sockmap-safety.js';
import { requireRoot } from '../helpers/root.js';

requireRoot('the sockmap probe in the kernel matrix');

/** kernel -> the faults found there today. */
const EXPECTED: Record<string, SockmapFault[]> = {
  // Before 929e30f93125 FIONREAD does not count the psock queue; splice never reads it.
  '5.10': ['fionread-redirected', 'splice-redirected'],
  '6.1': ['fionread-redirected', 'splice-redirected'],
  '6.12': ['splice-redirected'],
};

for (const pin of KERNEL_PINS) {
  t.test(`kernel ${pin.name}`, async (t) => {
    const p = await probeInGuest(pin.name);
    const faults = sockmapFaults(p);
    t.comment(`${p.kernel}: ${JSON.stringify(p)}`);
    t.equal(p.failedStep, undefined, `the probe ran (${p.failedStep ?? ''} ${p.log ?? ''})`);
    t.equal(p.redirected?.tcpBytes, 0, 'the redirect happened');
    t.same(faults, EXPECTED[pin.name] ?? [], `faults: ${faults.join(', ') || 'none'}`);
    t.equal(decideSockmap('on', p).effective, faults.length ? 'off' : 'on', 'on: refused on any fault');
    t.equal(decideSockmap('proxy-only', p).effective, 'proxy-only', 'proxy-only: allowed');
  });
}
