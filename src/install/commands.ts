// `meshlane install`, `uninstall` and `status`: options in, the installer run,
// a report out. Loaded only when one of these commands is chosen.
import { createLogger, type Logger } from '../log/logger.js';
import { collectStatus, hasIstioCniEntry, renderStatus, type StatusReport } from './status.js';
import { startHealthServer } from './health.js';
import { Installer, resolveCgroupRoot, type InstallerEnv } from './installer.js';
import { runInstallLoop, type LoopState } from './loop.js';
import { chooseCriSocket, Reconciler, type RoundReport } from './reconcile.js';
import { nodeMetrics } from './node-metrics.js';
import { INSTALL_FLAGS, parseOptions, type InstallOptions } from './options.js';
import { readConfigFiles } from './cni-dir.js';
import { hasEntry } from './cniconf/chain.js';

/** What a node command gets from the command line: its streams and environment (the CLI's context). */
export interface CommandIo {
  stdout: NodeJS.WritableStream;
  stderr: NodeJS.WritableStream;
  env: Readonly<Record<string, string | undefined>>;
}

/** The running executable when it is meshlane's SEA build (not `node script.js`). */
function selfExecutable(): string | undefined {
  return /(^|\/)node$/.test(process.execPath) ? undefined : process.execPath;
}

function installerEnv(opts: InstallOptions, log: Logger, env: Readonly<Record<string, string | undefined>>): InstallerEnv {
  return {
    log,
    env,
    selfExe: selfExecutable(),
    async bpfObject() {
      if (opts.bpfObject) return opts.bpfObject;
      const { embeddedObjectPaths } = await import('./embedded-object.js');
      return embeddedObjectPaths(opts.stateDir);
    },
  };
}

async function cleanupObject(opts: InstallOptions): Promise<void> {
  if (opts.bpfObject) return;
  const { removeEmbeddedObject } = await import('./embedded-object.js');
  removeEmbeddedObject();
}

export async function runInstall(args: readonly string[], ctx: CommandIo, flags: readonly string[] = INSTALL_FLAGS): Promise<number> {
  const opts = parseOptions(args, ctx.env, flags);
  const log = createLogger({ level: opts.logLevel, stderrStream: ctx.stderr, fields: { component: 'installer' } });
  // The handlers come first: a SIGTERM at any later moment (a pass, a backoff, the health
  // server starting) ends the loop cleanly instead of killing the process half-way.
  const stop = new AbortController();
  const onSignal = (sig: string): void => {
    log.info(`${sig}: stopping; the datapath, pins and CNI config entry stay in place`);
    stop.abort();
  };
  const onTerm = (): void => onSignal('SIGTERM');
  const onInt = (): void => onSignal('SIGINT');
  if (!opts.once) {
    process.on('SIGTERM', onTerm);
    process.on('SIGINT', onInt);
  }
  const installer = new Installer(opts, installerEnv(opts, log, ctx.env));
  const criSocket = chooseCriSocket(opts.criSocket);
  if (!criSocket) log.warn('no container runtime socket: pods that start while meshlane is out of the CNI chain are not registered late', { criSocket: opts.criSocket ?? 'none found' });
  const reconciler = new Reconciler({
    paths: { bpfPinDir: opts.pinDir, cgroupRoot: installer.cgroupRoot, stateDir: opts.stateDir, dnsCapture: opts.dnsCapture },
    excludeNamespaces: opts.excludeNamespaces,
    criSocket,
    log,
  });
  try {
    if (opts.once) {
      const r = await installer.pass({ datapath: true });
      await cleanupObject(opts);
      const ready = r.datapath && r.conflist;
      const reconcile: RoundReport | undefined = r.datapath ? await reconciler.round() : undefined;
      ctx.stdout.write(`${JSON.stringify({ ready, datapath: r.datapath, conflist: r.conflist, conflistFile: r.conflistFile, reason: r.reason, ...(r.kernelRefused ? { kernelRefused: true } : {}), reconcile, sockmap: r.sockmap })}\n`);
      return ready ? 0 : 3;
    }
    const state: LoopState = { live: false, ready: false, reason: 'starting', passes: 0, conflistWrites: 0, reconcile: reconciler.totals };
    const health = await startHealthServer(
      {
        live: () => state.live,
        ready: () => ({ ready: state.ready, reason: state.reason }),
        metrics: () => nodeMetrics(state, opts.pinDir),
      },
      opts.healthAddress,
      opts.healthPort,
    );
    log.info('serving /healthz, /readyz, /metrics', { address: opts.healthAddress, port: health.port });
    let cleaned = false;
    await runInstallLoop(installer, log, state, {
      signal: stop.signal,
      periodMs: opts.period * 1000,
      afterPass: async () => {
        await reconciler.round();
      },
      onState: () => {
        if (state.passes === 1 && !cleaned) {
          cleaned = true;
          void cleanupObject(opts);
        }
      },
    });
    await health.close();
    return 0;
  } finally {
    reconciler.close();
    process.removeListener('SIGTERM', onTerm);
    process.removeListener('SIGINT', onInt);
    await log.close();
  }
}

export async function runUninstall(args: readonly string[], ctx: CommandIo, flags: readonly string[]): Promise<number> {
  const opts = parseOptions(args, ctx.env, flags);
  const log = createLogger({ level: opts.logLevel, stderrStream: ctx.stderr, fields: { component: 'uninstall' } });
  try {
    const installer = new Installer(opts, installerEnv(opts, log, ctx.env));
    const warnings = await installer.uninstall();
    for (const w of warnings) ctx.stderr.write(`meshlane uninstall: ${w}\n`);
    ctx.stdout.write(`meshlane uninstalled from this node${warnings.length ? ' (see the warnings above)' : ''}\n`);
    return 0;
  } finally {
    await log.close();
  }
}

export async function collectNodeStatus(opts: InstallOptions): Promise<StatusReport> {
  const cgroupRoot = resolveCgroupRoot(opts);
  const report = await collectStatus(opts.pinDir, cgroupRoot, opts.stateDir);
  const { files } = readConfigFiles(opts.cniNetDir);
  const holder = files.find((f) => hasEntry(f.bytes, f.name));
  report.conflist = holder
    ? { file: holder.name, hasEntry: true, detail: `${opts.cniNetDir}/${holder.name}`, istioCni: hasIstioCniEntry(holder.name, holder.bytes) }
    : { hasEntry: false, detail: files.length ? `no meshlane entry in ${opts.cniNetDir}` : `no CNI config in ${opts.cniNetDir}` };
  return report;
}

export async function runStatus(args: readonly string[], ctx: CommandIo, flags: readonly string[]): Promise<number> {
  const opts = parseOptions(args, ctx.env, flags);
  const report = await collectNodeStatus(opts);
  ctx.stdout.write(opts.json ? `${JSON.stringify(report, null, 2)}\n` : renderStatus(report));
  return report.installed && report.conflist?.hasEntry ? 0 : 3;
}
