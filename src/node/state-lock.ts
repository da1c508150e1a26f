// The one lock over a node's attachment records and map entries: the plugin's
// CNI calls and the installer's reconcile rounds take it around every change.
import { join } from 'node:path';

export function stateLockPath(stateDir: string): string {
  return join(stateDir, 'lock');
}
