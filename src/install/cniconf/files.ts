// The installer's conflist work, pure (bytes in, bytes out; the installer reads,
// writes atomically and logs), in one module per job: files.ts (names, kinds,
// order, shared types), validity.ts (what libcni accepts), primary.ts (which file
// the runtime uses), chain.ts (meshlane's entry in and out), restore.ts (the
// primary's file back at uninstall), plan.ts (one install step).
//
// Validity follows libcni (ConfFiles, ConfFromBytes, ConfListFromBytes): a
// `.conflist` is a list, a `.conf` or `.json` is a single network config, and the
// runtime uses the first valid one by name in byte order. The edit follows Istio's
// cni/pkg/install/cniconfig.go minus its known failures: a `.conf` is wrapped into
// a list with the conf's own `cniVersion` (Istio hard-codes 0.3.1, a downgrade)
// and `name` (Istio uses "k8s-pod-network", which also changes the network name
// libcni caches results under); an entry already there is replaced in place, never
// added twice (Istio's duplicate entries after a reboot); only meshlane's entries
// are ever removed.

/** The plugin `type` of meshlane's entry; every entry with this type is meshlane's. */
export const MESHLANE_TYPE = 'meshlane';
/** Istio's entry: meshlane goes after it and never touches it (running beside istio-cni). */
export const ISTIO_CNI_TYPE = 'istio-cni';
/** The extensions libcni's ConfFiles is asked for by kubelet, containerd and CRI-O. */
export const CNI_CONFIG_EXTENSIONS = ['.conf', '.conflist', '.json'] as const;

export type CniConfigExtension = (typeof CNI_CONFIG_EXTENSIONS)[number];
export type CniConfigKind = 'conf' | 'conflist';

export interface ConfigFile {
  /** Base name in the CNI config dir. */
  name: string;
  bytes: Uint8Array;
}

export type ParsedCniConfig =
  | { ok: true; kind: CniConfigKind; doc: Record<string, unknown> }
  | { ok: false; reason: string };

/** A config the installer was asked to edit is not one it can edit (the caller logs it and waits). */
export class ConflistError extends Error {
  override name = 'ConflistError';
}

/** filepath.Ext: from the last dot of the name on (".conf" for a file named ".conf"). */
export function fileExtension(fileName: string): string {
  const dot = fileName.lastIndexOf('.');
  return dot === -1 ? '' : fileName.slice(dot);
}

/** How libcni reads a file of this name, or undefined when it is not a config file at all. */
export function configKindOf(fileName: string): CniConfigKind | undefined {
  switch (fileExtension(fileName)) {
    case '.conflist':
      return 'conflist';
    case '.conf':
    case '.json':
      // containerd, CRI-O and kubelet load everything that is not .conflist with ConfFromFile.
      return 'conf';
    default:
      return undefined;
  }
}

/** The name a converted single config gets: `X.conf` / `X.json` → `X.conflist`. */
export function conflistNameFor(fileName: string): string {
  if (configKindOf(fileName) === 'conflist') return fileName;
  const ext = fileExtension(fileName);
  return `${fileName.slice(0, fileName.length - ext.length)}.conflist`;
}

/** Go's sort.Strings order: bytes of the UTF-8 names, not UTF-16 code units. */
export function compareByteOrder(a: string, b: string): number {
  return Buffer.compare(Buffer.from(a, 'utf8'), Buffer.from(b, 'utf8'));
}
