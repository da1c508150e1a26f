// The node installer's work, one level-triggered pass at a time (Istio's
// install loop): every pass checks each piece and writes only what is not right.
//   1. the plugin binary in the CNI bin dir (temp file + rename; skipped when identical)
//   2. the kernel probed (refused below the floor: one message, recorded for the
//      plugin, readiness says it); bpffs mounted; the datapath loaded and
//      attached (maps reused, programs swapped)
//   3. the settings map (the sockmap mode only after the kernel passed the sockmap probe for it)
//   4. the plugin's kubeconfig (in a cluster), rewritten when the token rotates
//   5. the entry in the primary conflist
import { existsSync, readFileSync, readdirSync, rmSync } from 'node:fs';
import { basename, dirname, join } from 'node:path';
import { installDatapath, attachedPrograms, removeDatapath, type DatapathLocation, type DatapathObjects, type InstallReport, type ObjectChoice } from '../bpf/loader.js';
import { pinPaths, wrongHooks } from '../bpf/names.js';
import type { CgroupAttachment } from '../bpf/readback.js';
import { judgeKernel, type KernelFeatures, type KernelVerdict } from '../bpf/kernel-probe.js';
import { probeKernel } from '../bpf/probe-kernel.js';
import { clearKernelRefusal, currentBootId, writeKernelRefusal } from '../node/kernel-refusal.js';
import { detachInbound } from '../bpf/inbound.js';
import { SET_F } from '../bpf/layout.js';
import { probeSockmap, type SockmapProbe } from '../bpf/sockmap-probe.js';
import { writeSettings } from '../bpf/registry.js';
import type { Logger } from '../log/logger.js';
import { attachmentsDir, listRecords } from '../node/records.js';
import { removeWriteLitter, writeFileAtomic } from '../sys/atomic-write.js';
import { run } from '../sys/exec.js';
import { findCgroup2Mount, isBpffs } from '../sys/fsinfo.js';
import { mkdirp } from '../sys/mkdirp.js';
import { UserError } from '../usage-error.js';
import { placeBinary } from './binary.js';
import { dropOriginal, fileMode, listOriginals, loadOriginal, originalsDir, readConfigFiles, saveOriginal, writeConfig } from './cni-dir.js';
import { hasEntry } from './cniconf/chain.js';
import { planInstall } from './cniconf/plan.js';
import { originalToKeep, planRestore, type RestorePlan } from './cniconf/restore.js';
import { pluginEntry } from './entry.js';
import { kubeconfigFromServiceAccount, renderKubeconfig } from './kubeconfig.js';
import type { InstallOptions } from './options.js';
import { decideSockmap, sockmapFlags, type SockmapDecision } from './sockmap-safety.js';
import { sockmapRecordPath, writeSockmapRecord } from './sockmap-state.js';
import { errorMessage, isSystemError } from '../describe-error.js';

export const PLUGIN_NAME = 'meshlane';

export interface InstallerEnv {
  log: Logger;
  env: Readonly<Record<string, string | undefined>>;
  /** The executable to place in the CNI bin dir (the running SEA); undefined: not placed. */
  selfExe: string | undefined;
  /** Path of the eBPF object to load, or the two builds for the loader to choose from. */
  bpfObject(): Promise<string | DatapathObjects>;
  /** Service account dir (tests point it elsewhere). */
  serviceAccountDir?: string;
  /** The sockmap fault probe (tests inject findings); default: the real probe on the running kernel. */
  probeSockmap?: () => SockmapProbe;
  /** What the kernel offers (tests inject a result); the real probe by default. */
  probeKernel?: (cgroupDir: string | undefined) => KernelFeatures;
}

export interface PassResult {
  datapath: boolean;
  conflist: boolean;
  /** The conflist file that holds the entry. */
  conflistFile?: string;
  reason: string;
  /** Whether this pass rewrote the conflist. */
  wroteConflist: boolean;
  /** The sockmap mode in force and why (decided once per process, at the first settings write). */
  sockmap?: SockmapDecision;
  /** The kernel was refused: `reason` is the one message that says why. */
  kernelRefused?: boolean;
}

export function resolveCgroupRoot(opts: InstallOptions): string {
  const root = opts.cgroupRoot ?? findCgroup2Mount();
  if (!root) throw new UserError('no cgroup2 mount in /proc/mounts: meshlane needs cgroup v2 (mount it, or pass --cgroup-root)');
  return root;
}

export async function ensureBpffs(bpffs: string, log: Logger): Promise<void> {
  if (isBpffs(bpffs)) return;
  mkdirp(bpffs);
  log.info('mounting the BPF filesystem', { path: bpffs });
  await run('mount', ['-t', 'bpf', 'bpf', bpffs]);
}

/** The probe's answer on the netns cookie in sock_ops picks the object; a probe that could not tell leaves the loader to try. */
export function objectChoiceOf(f: KernelFeatures): ObjectChoice {
  const p = f.optional['netns-cookie-in-sockops'];
  if (p === undefined) return {};
  if (p.ok) return { netnsCookieInSockops: true };
  return p.why === 'missing' ? { netnsCookieInSockops: false } : {};
}

/** Where cgroup v2 is on most nodes: the installer's cgroup root when no cgroup2 mount is found (then the kernel probe refuses). */
export const DEFAULT_CGROUP_ROOT = '/sys/fs/cgroup';

export class Installer {
  readonly cgroupRoot: string;
  readonly loc: DatapathLocation;
  private lastToken: string | undefined;
  private sockmapDecision: SockmapDecision | undefined;
  /** undefined: no cgroup2 mount was found (the kernel probe reports it). */
  private readonly foundCgroupRoot: string | undefined;
  private lastRefusal: string | undefined;

  constructor(
    readonly opts: InstallOptions,
    readonly env: InstallerEnv,
  ) {
    this.foundCgroupRoot = opts.cgroupRoot ?? findCgroup2Mount();
    this.cgroupRoot = this.foundCgroupRoot ?? DEFAULT_CGROUP_ROOT;
    this.loc = { pinDir: opts.pinDir, cgroupDir: this.cgroupRoot };
  }

  /** Which build of the object this kernel takes, from the last probe (unknown: the loader tries the newer first). */
  private objectChoice: ObjectChoice = {};

  /**
   * Probe the kernel and judge it. A refusal is logged once (again only when it
   * changes) and recorded in the state dir for the plugin; a pass clears it.
   */
  checkKernel(): KernelVerdict {
    const features = (this.env.probeKernel ?? ((dir) => probeKernel({ cgroupDir: dir })))(this.foundCgroupRoot);
    const verdict = judgeKernel(features);
    this.objectChoice = objectChoiceOf(features);
    if (verdict.ok) {
      clearKernelRefusal(this.opts.stateDir);
      if (this.lastRefusal !== '') {
        this.env.log.info('kernel probed: every feature the datapath needs is there', { kernel: features.release, ...(verdict.without.length ? { without: verdict.without } : {}) });
      }
      this.lastRefusal = '';
      return verdict;
    }
    writeKernelRefusal(this.opts.stateDir, { message: verdict.message, release: features.release, bootId: currentBootId() });
    if (this.lastRefusal !== verdict.message) this.env.log.error(verdict.message, { kernel: features.release, missing: verdict.missing });
    this.lastRefusal = verdict.message;
    return verdict;
  }

  placeBinary(): void {
    if (!this.env.selfExe) {
      this.env.log.warn('not running as the meshlane executable: the plugin binary is not placed', { cniBinDir: this.opts.cniBinDir });
      return;
    }
    mkdirp(this.opts.cniBinDir);
    const target = join(this.opts.cniBinDir, PLUGIN_NAME);
    if (placeBinary(this.env.selfExe, target)) this.env.log.info('placed the plugin binary', { path: target });
  }

  /** Load (or reload) and attach the datapath. Idempotent. */
  async installDatapath(): Promise<InstallReport> {
    await ensureBpffs(this.opts.bpffs, this.env.log);
    const report = await installDatapath(this.loc, await this.env.bpfObject(), this.objectChoice);
    this.env.log.info('datapath ready', { ...report, pinDir: this.opts.pinDir, cgroupRoot: this.cgroupRoot });
    await this.writeSettings();
    return report;
  }

  /**
   * The sockmap mode to run with. Before any sk_msg redirect is enabled the
   * running kernel is probed for the known sockmap faults (its own sockhash,
   * program and loopback sockets: src/bpf/sockmap-probe.ts); a mode the kernel
   * fails is refused and `off` runs instead. Once per process: the kernel does
   * not change under it. The decision is logged and kept for `status`.
   */
  sockmap(): SockmapDecision {
    if (this.sockmapDecision) return this.sockmapDecision;
    const requested = this.opts.sockmap;
    let probe: SockmapProbe | Error | undefined;
    if (requested !== 'off') {
      try {
        probe = (this.env.probeSockmap ?? probeSockmap)();
      } catch (err) {
        probe = err instanceof Error ? err : new Error(errorMessage(err));
      }
    }
    const d = decideSockmap(requested, probe);
    const fields = { requested: d.requested, effective: d.effective, allowed: d.allowed, faults: d.faults, ...(probe && !(probe instanceof Error) ? { probe } : {}) };
    if (d.effective !== d.requested) this.env.log.warn(d.message, fields);
    else this.env.log.info(d.message, fields);
    writeSockmapRecord(this.opts.stateDir, d);
    this.sockmapDecision = d;
    return d;
  }

  async writeSettings(): Promise<void> {
    const flags = sockmapFlags(this.sockmap().effective, SET_F);
    await writeSettings(this.opts.pinDir, {
      proxy_uid: this.opts.proxyUid,
      proxy_gid: this.opts.proxyGid,
      outbound_port: 15001,
      inbound_port: 15006,
      dns_port: 15053,
      flags,
    });
  }

  /**
   * Every hook of the loaded datapath holds exactly one meshlane program: the
   * compat build's ml_sock_create too where it was loaded (without it, a 5.10
   * node's sockets lose their netns cookie and the sockmap and SO_ORIGINAL_DST
   * lookups miss).
   */
  async datapathAttached(): Promise<boolean> {
    if (!existsSync(this.opts.pinDir)) return false;
    let attached: CgroupAttachment[];
    try {
      attached = await attachedPrograms(this.cgroupRoot);
    } catch (e) {
      this.env.log.warn('cannot list the programs attached to the cgroup root: counted as not attached (the datapath is installed again)', { cgroupRoot: this.cgroupRoot, error: errorMessage(e) });
      return false;
    }
    let pinned: string[];
    try {
      pinned = readdirSync(pinPaths(this.opts.pinDir).progs);
    } catch (e) {
      // No programs pinned (or the dir went away under a second installer): not attached as installed.
      this.env.log.info('no pinned programs to check the hooks against: counted as not attached (the datapath is installed again)', { pinDir: this.opts.pinDir, error: errorMessage(e) });
      return false;
    }
    const wrong = wrongHooks(pinned, attached);
    if (wrong.length > 0) this.env.log.info('the datapath is not attached as installed: hooks without exactly one meshlane program (the datapath is installed again)', { cgroupRoot: this.cgroupRoot, hooks: wrong });
    return wrong.length === 0;
  }

  /** Write the kubeconfig when in a cluster and its content changed (token rotation). */
  writeKubeconfig(): void {
    if (!this.env.env['KUBERNETES_SERVICE_HOST']) return;
    const input = kubeconfigFromServiceAccount(this.env.env, this.env.serviceAccountDir);
    const text = renderKubeconfig(input);
    let current: string | undefined;
    try {
      current = readFileSync(this.opts.kubeconfig, 'utf8');
    } catch (err) {
      if (!isSystemError(err)) throw err; // not written yet, or unreadable: write it
      current = undefined;
    }
    if (current === text) return;
    mkdirp(join(this.opts.kubeconfig, '..'), 0o755);
    writeFileAtomic(this.opts.kubeconfig, text, 0o600);
    this.env.log.info(this.lastToken === undefined ? 'wrote the plugin kubeconfig' : 'rewrote the plugin kubeconfig (token rotated)', { path: this.opts.kubeconfig });
    this.lastToken = input.token;
  }

  entry(): Record<string, unknown> {
    return pluginEntry(this.opts, this.cgroupRoot);
  }

  /** Put the entry in the primary conflist if it is not there (right) already. */
  ensureConflist(): Pick<PassResult, 'conflist' | 'conflistFile' | 'reason' | 'wroteConflist'> {
    const dir = this.opts.cniNetDir;
    const { files, unreadable } = readConfigFiles(dir);
    for (const u of unreadable) this.env.log.warn('CNI config skipped: unreadable', { file: u.name, reason: u.reason });
    const candidates = this.opts.confName ? files.filter((f) => f.name === this.opts.confName) : files;
    const plan = planInstall(candidates, this.entry());
    for (const s of plan.skipped) this.env.log.warn('CNI config skipped: not a valid config', { file: s.name, reason: s.reason });
    switch (plan.action) {
      case 'wait':
        return { conflist: false, reason: `waiting for a CNI config in ${dir}${this.opts.confName ? ` named ${this.opts.confName}` : ''} (${plan.reason})`, wroteConflist: false };
      case 'refuse':
        this.env.log.error('cannot chain into the primary CNI config', { file: plan.primary.name, reason: plan.reason });
        return { conflist: false, conflistFile: plan.primary.name, reason: plan.reason, wroteConflist: false };
      case 'none':
        return { conflist: true, conflistFile: plan.primary.name, reason: 'chained', wroteConflist: false };
      case 'write': {
        const saved = loadOriginal(this.opts.stateDir, plan.primary.name);
        saveOriginal(this.opts.stateDir, originalToKeep(saved, plan.primary));
        writeConfig(dir, plan.write, fileMode(dir, plan.primary.name));
        if (plan.remove) rmSync(join(dir, plan.remove), { force: true });
        this.env.log.info('chained meshlane into the CNI config', { file: plan.write.name, from: plan.primary.name });
        return { conflist: true, conflistFile: plan.write.name, reason: 'chained', wroteConflist: true };
      }
    }
  }

  /**
   * Remove the temp files that killed writers of ours left (an install or uninstall
   * killed mid-write, a CNI call killed by its timeout): in the CNI config dir, the
   * CNI bin dir (only the plugin's), the state dir, and beside the kubeconfig.
   * Only files of our exact temp name pattern whose writer no longer runs.
   */
  tidy(): void {
    const kubeconfigName = basename(this.opts.kubeconfig);
    const places: Array<[string, (name: string) => boolean]> = [
      [this.opts.cniNetDir, () => true],
      [this.opts.cniBinDir, (name) => name === PLUGIN_NAME],
      [this.opts.stateDir, () => true],
      [originalsDir(this.opts.stateDir), () => true],
      [attachmentsDir(this.opts.stateDir), () => true],
      [dirname(this.opts.kubeconfig), (name) => name === kubeconfigName],
    ];
    for (const [dir, forName] of places) {
      const removed = removeWriteLitter(dir, forName);
      if (removed.length) this.env.log.info('removed temp files of an interrupted write', { dir, files: removed });
    }
  }

  /** One full pass. `datapath: true` (the first pass) also reloads the programs and tidies up. */
  async pass(opts: { datapath: boolean }): Promise<PassResult> {
    if (opts.datapath) this.tidy();
    this.placeBinary();
    if (opts.datapath || !(await this.datapathAttached())) {
      const kernel = this.checkKernel();
      if (!kernel.ok) {
        // The entry still goes into the chain: a sidecar pod's ADD then fails
        // (code 11, naming the kernel) instead of the pod starting unintercepted,
        // and every other pod passes through as before.
        this.writeKubeconfig();
        const c = this.ensureConflist();
        return { ...c, datapath: false, reason: kernel.message, kernelRefused: true };
      }
      await this.installDatapath();
    }
    this.writeKubeconfig();
    const c = this.ensureConflist();
    const datapath = await this.datapathAttached();
    return { datapath, ...c, reason: datapath ? c.reason : 'the datapath is not attached', ...(this.sockmapDecision ? { sockmap: this.sockmapDecision } : {}) };
  }

  /** Take meshlane off the node. Returns what it could not do (as warnings). */
  async uninstall(): Promise<string[]> {
    const warnings: string[] = [];
    this.tidy();
    // 1. The conflist entry first: no new pod is handed to a plugin that is going away.
    const dir = this.opts.cniNetDir;
    const { files } = readConfigFiles(dir);
    const originals = listOriginals(this.opts.stateDir);
    for (const original of originals) {
      const converted = original.name.replace(/\.(conf|json)$/, '.conflist');
      const currentName = files.some((f) => f.name === original.name && hasEntry(f.bytes, f.name)) ? original.name : converted;
      const current = files.find((f) => f.name === currentName);
      const atOriginal = currentName !== original.name ? files.find((f) => f.name === original.name)?.bytes : undefined;
      const plan = planRestore({ original, current, atOriginalName: atOriginal });
      this.applyRestore(plan);
      this.env.log.info('CNI config restored', { file: original.name, action: plan.action, reason: plan.reason });
      dropOriginal(this.opts.stateDir, original.name);
    }
    for (const f of readConfigFiles(dir).files) {
      if (!hasEntry(f.bytes, f.name)) continue;
      const plan = planRestore({ original: f, current: f });
      if (plan.action === 'strip' && plan.write) {
        writeConfig(dir, plan.write, fileMode(dir, f.name));
        this.env.log.info('removed the meshlane entry', { file: f.name });
      }
    }
    // 2. The datapath: first the per-pod inbound programs (tc filters in each
    // pod netns the plugin attached to), then everything on the cgroup.
    for (const rec of listRecords(this.opts.stateDir).records) {
      if (!rec.netns) continue;
      try {
        const removed = await detachInbound({ netnsPath: rec.netns, ifname: rec.ifname }, rec.tc?.addedClsact ?? false);
        if (removed.length > 0) this.env.log.info('inbound programs detached', { pod: `${rec.namespace}/${rec.name}`, removed });
      } catch (err) {
        warnings.push(`could not detach the inbound programs of pod ${rec.namespace}/${rec.name} (${rec.netns} ${rec.ifname}): ${errorMessage(err)}`);
      }
    }
    const detached = await removeDatapath(this.loc);
    this.env.log.info('datapath removed', { detached, pinDir: this.opts.pinDir });
    rmSync(sockmapRecordPath(this.opts.stateDir), { force: true }); // the sockmap decision went with the datapath
    // 3. The kubeconfig.
    rmSync(this.opts.kubeconfig, { force: true });
    // 4. The binary, only when no pod still needs its DEL.
    const { records } = listRecords(this.opts.stateDir);
    const bin = join(this.opts.cniBinDir, PLUGIN_NAME);
    if (records.length > 0) {
      warnings.push(`${records.length} pod(s) still have meshlane attachment records in ${this.opts.stateDir}: ${bin} stays so that their CNI DEL works; run 'meshlane uninstall' again once they are gone`);
    } else {
      rmSync(bin, { force: true });
    }
    return warnings;
  }

  private applyRestore(plan: RestorePlan): void {
    const dir = this.opts.cniNetDir;
    // A restored X.conf takes the mode of the X.conflist it replaces.
    if (plan.write) writeConfig(dir, plan.write, fileMode(dir, plan.write.name, fileMode(dir, plan.remove ?? plan.write.name)));
    if (plan.remove) rmSync(join(dir, plan.remove), { force: true });
  }
}
