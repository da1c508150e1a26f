// Is the node's datapath there? The installer pins the maps; without them a
// sidecar pod cannot be registered (and must not start unintercepted).
import { existsSync } from 'node:fs';
import { MAP_NAMES, pinPaths } from '../bpf/names.js';

export function datapathInstalled(pinDir: string): boolean {
  const p = pinPaths(pinDir);
  return existsSync(p.map(MAP_NAMES.podsByCgroup)) && existsSync(p.map(MAP_NAMES.podsByIp)) && existsSync(p.map(MAP_NAMES.settings));
}
