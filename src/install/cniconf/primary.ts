// Choosing the primary config as the runtime does: the first valid one by name in
// byte order (libcni ConfFiles + sort.Strings), invalid ones skipped.
import { type CniConfigKind, type ConfigFile, configKindOf, compareByteOrder } from './files.js';
import { parseCniConfig } from './validity.js';

export interface SkippedConfig {
  name: string;
  reason: string;
}

export interface PrimaryConfig extends ConfigFile {
  kind: CniConfigKind;
  doc: Record<string, unknown>;
  /** Config files before it in byte order that the runtime skips too, with why (to log). */
  skipped: SkippedConfig[];
}

export interface CniDirScan {
  primary: PrimaryConfig | undefined;
  /** Every invalid config file (before and after the primary). */
  skipped: SkippedConfig[];
  /** Files that are not configs at all (other extensions, meshlane's temp files). */
  ignored: string[];
}

/**
 * Classify a directory listing. The primary is the config the runtime uses: the
 * first valid `.conf`/`.conflist`/`.json` by name in byte order (libcni ConfFiles +
 * sort.Strings; invalid ones are skipped as kubelet's and Istio's
 * getDefaultCNINetwork do); undefined when there is none yet.
 */
export function scanCniConfigs(files: ReadonlyArray<ConfigFile>): CniDirScan {
  const ignored: string[] = [];
  const candidates: ConfigFile[] = [];
  for (const f of files) {
    if (configKindOf(f.name) === undefined) ignored.push(f.name);
    else candidates.push(f);
  }
  candidates.sort((a, b) => compareByteOrder(a.name, b.name));
  ignored.sort(compareByteOrder);
  const skipped: SkippedConfig[] = [];
  let primary: PrimaryConfig | undefined;
  for (const f of candidates) {
    const p = parseCniConfig(f.name, f.bytes);
    if (!p.ok) skipped.push({ name: f.name, reason: p.reason });
    else if (primary === undefined) primary = { name: f.name, bytes: f.bytes, kind: p.kind, doc: p.doc, skipped: [...skipped] };
  }
  return { primary, skipped, ignored };
}
