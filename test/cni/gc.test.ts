import t from 'tap';
import { validAttachments } from '../../src/cni/gc.js';
import { throwsCni } from './helpers.js';

t.test('valid attachments of a GC request', async (t) => {
  const list = [
    { containerID: '3f6940ab5ab4', ifname: 'eth0' },
    { containerID: '3f6940ab5ab4', ifname: 'net1' },
  ];
  t.same(validAttachments({ 'cni.dev/valid-attachments': list }), list);
  t.same(validAttachments({ 'cni.dev/attachments': list }), list, 'the older key');
  t.same(validAttachments({ 'cni.dev/valid-attachments': [], 'cni.dev/attachments': list }), [], 'the current key wins');
  t.equal(validAttachments({}), undefined, 'none given: undefined, not "nothing is valid"');
  t.same(validAttachments({ 'cni.dev/valid-attachments': [{ containerID: 'a', ifname: 'eth0', extra: 1 }] }), [{ containerID: 'a', ifname: 'eth0' }]);
  throwsCni(t, () => validAttachments({ 'cni.dev/valid-attachments': {} }), 7, 'cni.dev/valid-attachments is not an array', 'got an object');
  throwsCni(t, () => validAttachments({ 'cni.dev/valid-attachments': ['x'] }), 7, 'cni.dev/valid-attachments[0] is not a JSON object', 'got a string');
  throwsCni(t, () => validAttachments({ 'cni.dev/valid-attachments': [{ ifname: 'eth0' }] }), 7, 'cni.dev/valid-attachments[0].containerID is not a non-empty string');
  throwsCni(t, () => validAttachments({ 'cni.dev/attachments': [{ containerID: 'a' }] }), 7, 'cni.dev/attachments[0].ifname is not a string');
});
