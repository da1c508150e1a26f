// The Kubernetes manifests and the image definition in install/, checked against
// the installer's real interface (src/install/options.ts): the DaemonSet runs
// `meshlane install`, every MESHLANE_* value it gets is one the installer
// accepts and lands where expected, every host path the installer or the plugin
// writes is mounted at the same path (the conflist entry carries those paths and
// the plugin runs on the host), probes hit /readyz and /healthz on the configured
// port, RBAC is `get pods` and nothing else, and the Containerfile puts
// dist/meshlane at /usr/local/bin/meshlane next to bpftool.
import { existsSync, readFileSync, readdirSync } from 'node:fs';
import { dirname, join, posix } from 'node:path';
import t, { type Test } from 'tap';
import { parseAllDocuments } from 'yaml';
import { pluginEntry } from '../../src/install/entry.js';
import { INSTALL_FLAGS, SPECS, UNINSTALL_FLAGS, parseOptions, type InstallOptions } from '../../src/install/options.js';
import { repoRoot } from '../helpers/paths.js';

const k8sDir = join(repoRoot, 'install', 'kubernetes');
const containerfile = join(repoRoot, 'install', 'Containerfile');
const BIN = '/usr/local/bin/meshlane';

// ---- the shapes used here (only the fields the checks read) -----------------
interface Meta {
  name?: string;
  namespace?: string;
  labels?: Record<string, string>;
  annotations?: Record<string, string>;
}
interface Doc {
  apiVersion?: string;
  kind?: string;
  metadata?: Meta;
  [k: string]: unknown;
}
interface VolumeMount {
  name: string;
  mountPath: string;
  readOnly?: boolean;
  mountPropagation?: string;
}
interface Probe {
  httpGet?: { path?: string; port?: number | string; host?: string };
}
interface SecurityContext {
  privileged?: boolean;
  allowPrivilegeEscalation?: boolean;
  readOnlyRootFilesystem?: boolean;
  capabilities?: { add?: string[]; drop?: string[] };
}
interface Container {
  name: string;
  image?: string;
  command?: string[];
  args?: string[];
  env?: Array<{ name: string; value?: string; valueFrom?: unknown }>;
  envFrom?: Array<{ configMapRef?: { name: string }; secretRef?: unknown; prefix?: string }>;
  ports?: Array<{ name?: string; containerPort: number; protocol?: string }>;
  readinessProbe?: Probe;
  livenessProbe?: Probe;
  securityContext?: SecurityContext;
  volumeMounts?: VolumeMount[];
  resources?: { requests?: Record<string, string>; limits?: Record<string, string> };
}
interface Volume {
  name: string;
  hostPath?: { path: string; type?: string };
  emptyDir?: unknown;
}
interface Toleration {
  key?: string;
  operator?: string;
  effect?: string;
}
interface PodSpec {
  serviceAccountName?: string;
  automountServiceAccountToken?: boolean;
  hostNetwork?: boolean;
  hostPID?: boolean;
  priorityClassName?: string;
  tolerations?: Toleration[];
  terminationGracePeriodSeconds?: number;
  initContainers?: Container[];
  containers: Container[];
  volumes?: Volume[];
}
interface DaemonSet extends Doc {
  spec: {
    selector: { matchLabels: Record<string, string> };
    updateStrategy?: { type?: string; rollingUpdate?: { maxUnavailable?: number | string } };
    template: { metadata?: Meta; spec: PodSpec };
  };
}
interface ConfigMap extends Doc {
  data?: Record<string, unknown>;
}
interface Rule {
  apiGroups?: string[];
  resources?: string[];
  verbs?: string[];
  resourceNames?: string[];
  nonResourceURLs?: string[];
}

// ---- reading the files ---------------------------------------------------------
interface Loaded {
  file: string;
  doc: Doc;
}

/** Every document of every YAML file in install/kubernetes, read as kubectl reads it (YAML 1.1). */
function loadManifests(): { docs: Loaded[]; problems: string[] } {
  const docs: Loaded[] = [];
  const problems: string[] = [];
  const files = readdirSync(k8sDir).filter((f) => /\.ya?ml$/.test(f)).sort();
  for (const file of files) {
    const text = readFileSync(join(k8sDir, file), 'utf8');
    for (const d of parseAllDocuments(text, { version: '1.1', uniqueKeys: true })) {
      for (const e of [...d.errors, ...d.warnings]) problems.push(`${file}: ${e.message}`);
      const js: unknown = d.toJS();
      if (js === null || js === undefined) continue; // an empty document (a leading ---)
      docs.push({ file, doc: js as Doc });
    }
  }
  return { docs, problems };
}

const { docs, problems } = loadManifests();
const byKind = <T extends Doc>(kind: string): T[] => docs.filter((d) => d.doc.kind === kind).map((d) => d.doc as T);
const daemonSets = byKind<DaemonSet>('DaemonSet');
const installDs = daemonSets.find((d) => d.metadata?.name === 'meshlane');
const uninstallDs = daemonSets.find((d) => d.metadata?.name === 'meshlane-uninstall');

function mustGet<T>(v: T | undefined, what: string): T {
  if (v === undefined) throw new Error(`${what} not found in install/kubernetes`);
  return v;
}

const allContainers = (ps: PodSpec): Container[] => [...(ps.initContainers ?? []), ...ps.containers];

function configMapNamed(name: string): ConfigMap {
  return mustGet(byKind<ConfigMap>('ConfigMap').find((c) => c.metadata?.name === name), `ConfigMap ${name}`);
}

/** The environment a container gets: its envFrom ConfigMaps, then its own env (which wins). */
function containerEnv(c: Container): Record<string, string> {
  const env: Record<string, string> = {};
  for (const from of c.envFrom ?? []) {
    if (!from.configMapRef) throw new Error(`${c.name}: only configMapRef envFrom is expected`);
    const data = configMapNamed(from.configMapRef.name).data ?? {};
    for (const [k, v] of Object.entries(data)) env[`${from.prefix ?? ''}${k}`] = String(v);
  }
  for (const e of c.env ?? []) {
    if (e.value === undefined) throw new Error(`${c.name}: env ${e.name} without a literal value`);
    env[e.name] = e.value;
  }
  return env;
}

const SPEC_BY_ENV = new Map(SPECS.map((s) => [s.env, s]));
type Spec = (typeof SPECS)[number];

/** The InstallOptions field a flag fills: cni-net-dir → cniNetDir. */
function fieldOf(flag: string): keyof InstallOptions {
  return flag.replace(/-([a-z])/g, (_, c: string) => c.toUpperCase()) as keyof InstallOptions;
}

/** What a MESHLANE_* value becomes once parsed, per the spec's kind. */
function expected(spec: Spec, value: string): unknown {
  switch (spec.kind) {
    case 'int':
      return Number(value);
    case 'bool':
      return /^(1|true|yes|on)$/i.test(value);
    case 'list':
      return value.split(',').map((s) => s.trim()).filter((s) => s !== '');
    default:
      return value === '' ? undefined : value;
  }
}

/** The volumeMount that holds `path` inside the container (longest mountPath prefix). */
function mountFor(c: Container, path: string): VolumeMount | undefined {
  const norm = posix.normalize(path);
  return (c.volumeMounts ?? [])
    .filter((m) => norm === m.mountPath || norm.startsWith(m.mountPath.endsWith('/') ? m.mountPath : `${m.mountPath}/`))
    .sort((a, b) => b.mountPath.length - a.mountPath.length)[0];
}

function volumeOf(ps: PodSpec, m: VolumeMount): Volume | undefined {
  return (ps.volumes ?? []).find((v) => v.name === m.name);
}

/** `path` is on a hostPath volume mounted at the same path, writable. */
function checkHostPathCoverage(t: Test, ps: PodSpec, c: Container, path: string, what: string): void {
  const m = mountFor(c, path);
  if (!m) {
    t.fail(`${c.name}: ${what} ${path} is on no volume mount`);
    return;
  }
  const v = volumeOf(ps, m);
  t.ok(v?.hostPath, `${c.name}: ${what} ${path} is on hostPath volume ${m.name}`);
  t.equal(v?.hostPath?.path, m.mountPath, `${c.name}: ${what} ${path}: host path ${v?.hostPath?.path} mounted at the same path`);
  t.notOk(m.readOnly, `${c.name}: ${what} ${path} is writable`);
}

function resolvePort(c: Container, port: number | string | undefined): number | undefined {
  if (typeof port === 'number') return port;
  if (typeof port === 'string' && /^\d+$/.test(port)) return Number(port);
  return c.ports?.find((p) => p.name === port)?.containerPort;
}

// ---- the checks ------------------------------------------------------------------
t.test('every document parses as kubectl reads it and names itself', async (t) => {
  t.strictSame(problems, [], 'no YAML errors or warnings (YAML 1.1, unique keys)');
  t.ok(docs.length >= 6, `${docs.length} documents`);
  const seen = new Set<string>();
  for (const { file, doc } of docs) {
    const id = `${file}: ${doc.kind}/${doc.metadata?.name}`;
    t.type(doc.apiVersion, 'string', `${id}: apiVersion`);
    t.type(doc.kind, 'string', `${id}: kind`);
    t.type(doc.metadata?.name, 'string', `${id}: metadata.name`);
    const clusterScoped = doc.kind === 'ClusterRole' || doc.kind === 'ClusterRoleBinding' || doc.kind === 'Namespace';
    if (clusterScoped) t.notOk(doc.metadata?.namespace, `${id}: cluster-scoped, no namespace`);
    else t.equal(doc.metadata?.namespace, 'kube-system', `${id}: in kube-system`);
    const key = `${doc.kind}/${doc.metadata?.namespace ?? ''}/${doc.metadata?.name}`;
    t.notOk(seen.has(key), `${id}: defined once`);
    seen.add(key);
  }
  for (const kind of ['ServiceAccount', 'ClusterRole', 'ClusterRoleBinding', 'ConfigMap', 'DaemonSet']) {
    t.ok(byKind(kind).length > 0, `has a ${kind}`);
  }
  t.ok(installDs, 'DaemonSet meshlane');
  t.ok(uninstallDs, 'DaemonSet meshlane-uninstall');
});

t.test('every ConfigMap value is a string and a known MESHLANE_* variable', async (t) => {
  for (const cm of byKind<ConfigMap>('ConfigMap')) {
    for (const [k, v] of Object.entries(cm.data ?? {})) {
      t.type(v, 'string', `${cm.metadata?.name}.${k} is a string (quote it: YAML 1.1 reads off/on/1337 as other types)`);
      t.ok(SPEC_BY_ENV.has(k), `${cm.metadata?.name}.${k} is a variable of src/install/options.ts`);
    }
  }
});

t.test('the installer DaemonSet runs `meshlane install` with values it accepts', async (t) => {
  const ds = mustGet(installDs, 'DaemonSet meshlane');
  const ps = ds.spec.template.spec;
  t.equal(ps.containers.length, 1, 'one long-running container');
  const c = mustGet(ps.containers[0], 'installer container');
  t.strictSame(c.command, [BIN, 'install'], 'command is meshlane install');
  t.strictSame(c.args ?? [], [], 'no args (settings come from the ConfigMap)');
  const env = containerEnv(c);
  t.ok(Object.keys(env).length > 0, 'gets its settings from the ConfigMap');
  for (const [k, v] of Object.entries(env)) {
    const spec = SPEC_BY_ENV.get(k);
    t.ok(spec, `${k} is a known MESHLANE_* variable`);
    if (spec) t.ok(INSTALL_FLAGS.includes(spec.flag), `${k} is read by meshlane install (--${spec.flag})`);
    t.not(k, 'MESHLANE_ONCE', 'not --once: the DaemonSet keeps the node right');
    void v;
  }
  let opts: InstallOptions | undefined;
  t.doesNotThrow(() => {
    opts = parseOptions([], env, INSTALL_FLAGS);
  }, 'parseOptions accepts the manifest env');
  const o = mustGet(opts, 'parsed options');
  t.equal(o.once, false, 'long-running loop');
  for (const [k, v] of Object.entries(env)) {
    const spec = SPEC_BY_ENV.get(k);
    if (!spec) continue;
    t.strictSame(o[fieldOf(spec.flag)], expected(spec, v), `${k}=${JSON.stringify(v)} lands in ${fieldOf(spec.flag)}`);
  }
  // What the paths resolve to: the manifest's own, or the installer's defaults.
  t.equal(o.cniNetDir, '/etc/cni/net.d');
  t.equal(o.cniBinDir, '/opt/cni/bin');
  t.equal(o.bpffs, '/sys/fs/bpf');
  t.equal(o.pinDir, '/sys/fs/bpf/meshlane');
  t.equal(o.stateDir, '/var/lib/meshlane');
  t.equal(o.kubeconfig, '/var/run/meshlane/kubeconfig');
  t.ok(o.healthPort > 0, 'a fixed health port (probes need it)');
});

t.test('every host path the installer and the plugin write is mounted at the same path', async (t) => {
  const ds = mustGet(installDs, 'DaemonSet meshlane');
  const ps = ds.spec.template.spec;
  const c = mustGet(ps.containers[0], 'installer container');
  const o = parseOptions([], containerEnv(c), INSTALL_FLAGS);
  const writes: Array<[string, string]> = [
    ['CNI config dir', o.cniNetDir],
    ['CNI bin dir (the plugin binary)', join(o.cniBinDir, 'meshlane')],
    ['bpffs', o.bpffs],
    ['pin dir', o.pinDir],
    ['state dir', o.stateDir],
    ['kubeconfig', o.kubeconfig],
  ];
  if (o.logFile) writes.push(['plugin log file', o.logFile]);
  // The cgroup root: as given, or whichever cgroup2 mount the installer detects.
  const cgroupRoots = o.cgroupRoot ? [o.cgroupRoot] : ['/sys/fs/cgroup', '/sys/fs/cgroup/unified'];
  for (const root of cgroupRoots) writes.push(['cgroup root', root]);
  for (const [what, path] of writes) checkHostPathCoverage(t, ps, c, path, what);

  // The conflist entry the installer writes: each path in it is read by the plugin ON THE HOST.
  for (const root of cgroupRoots) {
    const entry = pluginEntry(o, root);
    for (const field of ['bpf_pin_dir', 'cgroup_root', 'state_dir', 'kubeconfig', 'log_file']) {
      const p = entry[field];
      if (typeof p !== 'string' || p === '') continue;
      checkHostPathCoverage(t, ps, c, field === 'log_file' || field === 'kubeconfig' ? dirname(p) : p, `conflist entry ${field}`);
    }
  }

  const bpf = mustGet(mountFor(c, o.bpffs), 'bpffs mount');
  t.ok(['HostToContainer', 'Bidirectional'].includes(bpf.mountPropagation ?? ''), `bpffs mount sees host mounts (${bpf.mountPropagation})`);
});

t.test('every hostPath mount in every container keeps the host path', async (t) => {
  for (const ds of daemonSets) {
    const ps = ds.spec.template.spec;
    for (const c of allContainers(ps)) {
      for (const m of c.volumeMounts ?? []) {
        const v = volumeOf(ps, m);
        t.ok(v, `${ds.metadata?.name}/${c.name}: volume ${m.name} exists`);
        if (v?.hostPath) t.equal(m.mountPath, v.hostPath.path, `${ds.metadata?.name}/${c.name}: ${m.name} at ${m.mountPath}`);
        // Kubernetes rejects Bidirectional outside privileged containers.
        if (m.mountPropagation === 'Bidirectional') t.equal(c.securityContext?.privileged, true, `${ds.metadata?.name}/${c.name}: Bidirectional ${m.mountPath} needs privileged`);
      }
    }
  }
});

t.test('bpffs is mounted on the host before the installer starts', async (t) => {
  const ps = mustGet(installDs, 'DaemonSet meshlane').spec.template.spec;
  const o = parseOptions([], containerEnv(mustGet(ps.containers[0], 'installer')), INSTALL_FLAGS);
  const init = (ps.initContainers ?? []).find((c) => (c.volumeMounts ?? []).some((m) => m.mountPath === o.bpffs && m.mountPropagation === 'Bidirectional'));
  t.ok(init, 'an init container mounts the host bpffs with Bidirectional propagation');
  if (init) {
    const script = [...(init.command ?? []), ...(init.args ?? [])].join(' ');
    t.match(script, `mount -t bpf bpf ${o.bpffs}`, 'it mounts bpffs at the configured path');
    t.equal(init.securityContext?.privileged, true, 'privileged (required for Bidirectional)');
  }
});

t.test('probes hit /readyz and /healthz on the health port', async (t) => {
  const ps = mustGet(installDs, 'DaemonSet meshlane').spec.template.spec;
  const c = mustGet(ps.containers[0], 'installer');
  const o = parseOptions([], containerEnv(c), INSTALL_FLAGS);
  t.equal(c.readinessProbe?.httpGet?.path, '/readyz', 'readiness on /readyz');
  t.equal(c.livenessProbe?.httpGet?.path, '/healthz', 'liveness on /healthz');
  t.equal(resolvePort(c, c.readinessProbe?.httpGet?.port), o.healthPort, 'readiness port = MESHLANE_HEALTH_PORT');
  t.equal(resolvePort(c, c.livenessProbe?.httpGet?.port), o.healthPort, 'liveness port = MESHLANE_HEALTH_PORT');
  t.equal(ps.hostNetwork, true, 'hostNetwork: the port is on the node');
  // kubelet probes the pod IP (the node IP here) unless httpGet.host says otherwise.
  if (!c.readinessProbe?.httpGet?.host) t.ok(['0.0.0.0', '::'].includes(o.healthAddress), `health address ${o.healthAddress} answers on the node IP`);
  const scrape = installDs?.spec.template.metadata?.annotations?.['prometheus.io/port'];
  if (scrape !== undefined) t.equal(Number(scrape), o.healthPort, 'prometheus.io/port = the health port');
});

t.test('RBAC grants exactly get on pods, to the installer service account', async (t) => {
  const ds = mustGet(installDs, 'DaemonSet meshlane');
  const ps = ds.spec.template.spec;
  t.equal(ps.automountServiceAccountToken, true, 'token mounted: the installer writes the plugin kubeconfig from it');
  const sa = byKind('ServiceAccount').find((s) => s.metadata?.name === ps.serviceAccountName);
  t.ok(sa, `ServiceAccount ${ps.serviceAccountName} defined`);
  t.equal(byKind('Role').length + byKind('RoleBinding').length, 0, 'no namespaced Role or RoleBinding');
  const roles = byKind<Doc & { rules?: Rule[] }>('ClusterRole');
  t.equal(roles.length, 1, 'one ClusterRole');
  const role = mustGet(roles[0], 'ClusterRole');
  t.strictSame(role.rules, [{ apiGroups: [''], resources: ['pods'], verbs: ['get'] }], 'rules: get pods, nothing else');
  const bindings = byKind<Doc & { roleRef?: { apiGroup?: string; kind?: string; name?: string }; subjects?: Array<{ kind?: string; name?: string; namespace?: string }> }>('ClusterRoleBinding');
  t.equal(bindings.length, 1, 'one ClusterRoleBinding');
  const b = mustGet(bindings[0], 'ClusterRoleBinding');
  t.strictSame(b.roleRef, { apiGroup: 'rbac.authorization.k8s.io', kind: 'ClusterRole', name: role.metadata?.name });
  t.strictSame(b.subjects, [{ kind: 'ServiceAccount', name: ps.serviceAccountName, namespace: ds.metadata?.namespace }]);
  const un = mustGet(uninstallDs, 'DaemonSet meshlane-uninstall').spec.template.spec;
  t.equal(un.automountServiceAccountToken, false, 'the uninstall needs no API access');
});

t.test('both DaemonSets run on every node, critical, one node at a time', async (t) => {
  for (const ds of daemonSets) {
    const name = ds.metadata?.name;
    const ps = ds.spec.template.spec;
    t.equal(ps.priorityClassName, 'system-node-critical', `${name}: priorityClassName`);
    const tol = ps.tolerations ?? [];
    t.ok(tol.some((x) => x.operator === 'Exists' && x.effect === 'NoSchedule' && !x.key), `${name}: tolerates every NoSchedule taint`);
    t.ok(tol.some((x) => x.operator === 'Exists' && x.effect === 'NoExecute' && !x.key), `${name}: tolerates every NoExecute taint`);
    t.ok(tol.some((x) => x.key === 'CriticalAddonsOnly' && x.operator === 'Exists'), `${name}: tolerates CriticalAddonsOnly`);
    t.equal(ds.spec.updateStrategy?.type, 'RollingUpdate', `${name}: RollingUpdate`);
    t.equal(ds.spec.updateStrategy?.rollingUpdate?.maxUnavailable, 1, `${name}: maxUnavailable 1`);
    t.ok((ps.terminationGracePeriodSeconds ?? 30) <= 10, `${name}: short termination grace period`);
    t.equal(ps.hostNetwork, true, `${name}: hostNetwork`);
    t.notOk(ps.hostPID, `${name}: no hostPID`);
    const labels = ds.spec.template.metadata?.labels ?? {};
    for (const [k, v] of Object.entries(ds.spec.selector.matchLabels)) t.equal(labels[k], v, `${name}: template has selector label ${k}`);
    for (const c of allContainers(ps)) t.ok(c.resources?.requests?.['cpu'] && c.resources.requests['memory'], `${name}/${c.name}: cpu and memory requests`);
  }
  const sel = daemonSets.map((d) => JSON.stringify(d.spec.selector.matchLabels));
  t.equal(new Set(sel).size, sel.length, 'the two DaemonSets select different pods');
});

t.test('the installer has the capabilities it needs and no more', async (t) => {
  const ps = mustGet(installDs, 'DaemonSet meshlane').spec.template.spec;
  const c = mustGet(ps.containers[0], 'installer');
  const sc = c.securityContext ?? {};
  t.notOk(sc.privileged, 'not privileged (only the bpffs mount init container is)');
  t.strictSame(sc.capabilities?.drop, ['ALL'], 'drops every default capability');
  t.strictSame([...(sc.capabilities?.add ?? [])].sort(), ['NET_ADMIN', 'SYS_ADMIN', 'SYS_RESOURCE'], 'adds SYS_ADMIN, NET_ADMIN, SYS_RESOURCE');
  // Kubernetes rejects allowPrivilegeEscalation: false together with CAP_SYS_ADMIN.
  t.not(sc.allowPrivilegeEscalation, false, 'allowPrivilegeEscalation not false (invalid with SYS_ADMIN)');
  if (sc.readOnlyRootFilesystem) {
    const tmp = mountFor(c, '/tmp/meshlane-bpf-x/meshlane.o');
    t.ok(tmp && volumeOf(ps, tmp)?.emptyDir !== undefined, 'read-only root: /tmp is an emptyDir (the embedded eBPF object is written there)');
  }
  for (const init of ps.initContainers ?? []) {
    t.notOk((init.command ?? []).includes(BIN), `init container ${init.name} does not run meshlane (it only mounts bpffs)`);
  }
});

t.test('the uninstall DaemonSet runs `meshlane uninstall` with the installer paths', async (t) => {
  const ds = mustGet(uninstallDs, 'DaemonSet meshlane-uninstall');
  const ps = ds.spec.template.spec;
  const installC = mustGet(installDs?.spec.template.spec.containers[0], 'installer');
  const inits = ps.initContainers ?? [];
  const c = mustGet(inits.find((x) => x.command?.[0] === BIN), 'uninstall init container');
  t.strictSame(c.command, [BIN, 'uninstall'], 'command is meshlane uninstall');
  t.strictSame(c.args ?? [], [], 'no args');
  t.strictSame(c.envFrom, installC.envFrom, 'the same settings as the installer');
  const env = containerEnv(c);
  let u: InstallOptions | undefined;
  t.doesNotThrow(() => {
    u = parseOptions([], env, UNINSTALL_FLAGS);
  }, 'parseOptions accepts the env for uninstall');
  const i = parseOptions([], containerEnv(installC), INSTALL_FLAGS);
  const uo = mustGet(u, 'uninstall options');
  for (const f of ['cniNetDir', 'cniBinDir', 'cgroupRoot', 'bpffs', 'pinDir', 'stateDir', 'kubeconfig'] as const) {
    t.equal(uo[f], i[f], `uninstall ${f} = install ${f}`);
  }
  const cgroupRoots = uo.cgroupRoot ? [uo.cgroupRoot] : ['/sys/fs/cgroup', '/sys/fs/cgroup/unified'];
  const paths: Array<[string, string]> = [
    ['CNI config dir', uo.cniNetDir],
    ['CNI bin dir', join(uo.cniBinDir, 'meshlane')],
    ['pin dir', uo.pinDir],
    ['state dir', uo.stateDir],
    ['kubeconfig', uo.kubeconfig],
    ...cgroupRoots.map((r): [string, string] => ['cgroup root', r]),
  ];
  for (const [what, p] of paths) checkHostPathCoverage(t, ps, c, p, what);
  const sc = c.securityContext ?? {};
  t.notOk(sc.privileged, 'not privileged');
  t.strictSame([...(sc.capabilities?.add ?? [])].sort(), ['NET_ADMIN', 'SYS_ADMIN', 'SYS_RESOURCE'], 'the installer capabilities');
  for (const main of ps.containers) t.notOk((main.command ?? []).includes(BIN), `${main.name} only keeps the pod running`);
});

t.test('every container runs the same image, tagged with the package version', async (t) => {
  const version = (JSON.parse(readFileSync(join(repoRoot, 'package.json'), 'utf8')) as { version: string }).version;
  const images = new Set(daemonSets.flatMap((d) => allContainers(d.spec.template.spec).map((c) => c.image)));
  t.equal(images.size, 1, `one image: ${[...images].join(', ')}`);
  const image = [...images][0] ?? '';
  t.match(image, new RegExp(`:${version.replace(/\./g, '\\.')}$`), `tag ${version}`);
});

// ---- the Containerfile ------------------------------------------------------------
interface Stage {
  from: string;
  name?: string;
  lines: string[];
}

/** Instructions (continuation lines joined, comments dropped), grouped by FROM. */
function stages(text: string): Stage[] {
  const joined = text
    .split('\n')
    .filter((l) => !/^\s*#/.test(l))
    .join('\n')
    .replace(/\\\n/g, ' ');
  const out: Stage[] = [];
  for (const raw of joined.split('\n')) {
    const line = raw.trim().replace(/\s+/g, ' ');
    if (line === '') continue;
    const from = /^FROM (?:--platform=\S+ )?(\S+)(?: AS (\S+))?$/i.exec(line);
    if (from) {
      out.push({ from: from[1] ?? '', ...(from[2] ? { name: from[2] } : {}), lines: [] });
    } else {
      const cur = out[out.length - 1];
      if (!cur) throw new Error(`Containerfile: ${line} before FROM`);
      cur.lines.push(line);
    }
  }
  return out;
}

t.test('the Containerfile builds from the repo and ships meshlane with bpftool', async (t) => {
  t.ok(existsSync(containerfile), 'install/Containerfile exists');
  const st = stages(readFileSync(containerfile, 'utf8'));
  t.equal(st.length, 2, 'a build stage and a runtime stage');
  const build = mustGet(st[0], 'build stage');
  const runtime = mustGet(st[st.length - 1], 'runtime stage');
  t.match(build.from, /(^|\/)node:22-bookworm$/, 'build stage: node 22 on Debian bookworm');
  const buildRun = build.lines.filter((l) => /^RUN /i.test(l)).join(' ; ');
  for (const pkg of ['clang', 'llvm', 'libbpf-dev']) t.match(buildRun, new RegExp(`apt-get install [^;&]*\\b${pkg}\\b`), `build stage installs ${pkg}`);
  t.match(buildRun, /\bnpm ci\b/, 'npm ci');
  t.match(buildRun, /\bnpm run build\b/, 'npm run build');
  // What the build stage copies from the context exists in the repo.
  for (const l of build.lines.filter((x) => /^COPY /i.test(x) && !/--from=/i.test(x))) {
    const parts = l.split(' ').slice(1);
    for (const src of parts.slice(0, -1)) t.ok(existsSync(join(repoRoot, src)), `COPY source ${src} is in the repo`);
  }
  t.match(runtime.from, /(^|\/)debian:bookworm-slim$/, 'runtime stage: debian bookworm-slim');
  const runtimeRun = runtime.lines.filter((l) => /^RUN /i.test(l)).join(' ; ');
  t.match(runtimeRun, /apt-get install [^;&]*\bbpftool\b/, 'runtime stage installs bpftool');
  t.match(runtimeRun, /apt-get install [^;&]*\bmount\b/, 'runtime stage installs mount (util-linux)');
  const copy = runtime.lines.find((l) => /^COPY --from=/i.test(l) && l.endsWith(` ${BIN}`));
  t.ok(copy, `runtime stage copies the executable to ${BIN}`);
  if (copy) {
    const [, fromStage, src] = /^COPY --from=(\S+) (\S+) /i.exec(copy) ?? [];
    t.equal(fromStage, build.name, 'from the build stage');
    t.match(src ?? '', /(^|\/)dist\/meshlane$/, 'the built dist/meshlane');
  }
  t.ok(existsSync(join(repoRoot, 'scripts', 'build.mjs')), 'npm run build is scripts/build.mjs');
  t.match(readFileSync(join(repoRoot, 'scripts', 'build.mjs'), 'utf8'), /join\(dist, 'meshlane'\)/, 'which writes dist/meshlane');
});

t.test('the README covers install, upgrade, uninstall and that the host needs no bpftool', async (t) => {
  const readme = readFileSync(join(repoRoot, 'install', 'README.md'), 'utf8');
  t.match(readme, /kubectl apply -f install\/kubernetes\/meshlane\.yaml/);
  t.match(readme, /## Upgrade/);
  t.match(readme, /## Uninstall/);
  t.match(readme, /kubectl apply -f install\/kubernetes\/uninstall\.yaml/);
  t.match(readme, /bash scripts\/demo\.sh/);
  t.match(readme, /needs no `bpftool`, `tc` or\s+iproute2 on the host/i);
});
