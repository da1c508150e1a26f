// What /metrics shows: the installer's state, map entry counts, the datapath counters.
import { existsSync } from 'node:fs';
import { COUNTERS } from '../bpf/layout.js';
import { ALL_MAPS, UNCOUNTED_MAPS, pinPaths } from '../bpf/names.js';
import { mapEntryCount, readCounters } from '../bpf/registry.js';
import type { LoopState } from './loop.js';
import { renderPrometheus, type Metric, type Sample } from './metrics.js';

export async function nodeMetrics(state: LoopState, pinDir: string): Promise<string> {
  const metrics: Metric[] = [
    { name: 'meshlane_install_ready', help: '1 when the datapath is attached and the CNI config holds the meshlane entry', type: 'gauge', samples: [{ value: state.ready ? 1 : 0 }] },
    { name: 'meshlane_install_passes_total', help: 'install loop passes', type: 'counter', samples: [{ value: state.passes }] },
    { name: 'meshlane_install_conflist_writes_total', help: 'times the meshlane entry was written into the CNI config', type: 'counter', samples: [{ value: state.conflistWrites }] },
  ];
  if (state.sockmap) {
    const d = state.sockmap;
    metrics.push(
      {
        name: 'meshlane_sockmap_mode',
        help: '1 for the sockmap mode in force (effective) with the mode configured (requested); they differ when the kernel failed the sockmap probe for the requested one',
        type: 'gauge',
        samples: [{ labels: { requested: d.requested, effective: d.effective }, value: 1 }],
      },
      {
        name: 'meshlane_sockmap_probe_fault',
        help: 'sockmap faults the probe found on this kernel (1 each; none when sockmap is off, since the probe does not run then)',
        type: 'gauge',
        samples: d.faults.map((f) => ({ labels: { fault: f }, value: 1 })),
      },
    );
  }
  if (state.reconcile) {
    const r = state.reconcile;
    metrics.push(
      { name: 'meshlane_reconcile_late_registrations_total', help: 'sidecar pods registered by the reconcile loop because they started while meshlane was not in the CNI chain', type: 'counter', samples: [{ value: r.lateRegistrations }] },
      { name: 'meshlane_reconcile_stale_removed_total', help: 'registrations of gone pods removed by the reconcile loop (their CNI DEL never came)', type: 'counter', samples: [{ value: r.staleRemoved }] },
      { name: 'meshlane_reconcile_failures_total', help: 'reconcile registrations or removals that failed (retried next round)', type: 'counter', samples: [{ value: r.failures }] },
      { name: 'meshlane_reconcile_runtime_up', help: '1 when the last round could ask the container runtime for its pods', type: 'gauge', samples: [{ value: r.runtimeProblem === undefined ? 1 : 0 }] },
    );
  }
  const p = pinPaths(pinDir);
  const maps: Sample[] = [];
  // A pinned map this scrape could not read: its figures are missing below, and this says so
  // (a scrape never fails for it; the installer's status names the error).
  const readErrors: Sample[] = [];
  const failed = (map: string) => (): undefined => {
    readErrors.push({ labels: { map }, value: 1 });
    return undefined;
  };
  for (const m of ALL_MAPS) {
    if (!existsSync(p.map(m)) || UNCOUNTED_MAPS.has(m)) continue;
    const n = await mapEntryCount(pinDir, m).catch(failed(m));
    if (n !== undefined) maps.push({ labels: { map: m }, value: n });
  }
  metrics.push({ name: 'meshlane_map_entries', help: 'entries in each pinned BPF map', type: 'gauge', samples: maps });
  if (existsSync(p.map('ml_counters'))) {
    const c = await readCounters(pinDir).catch(failed('ml_counters'));
    if (c) {
      metrics.push({
        name: 'meshlane_datapath_events_total',
        help: 'what the eBPF programs did, by event (summed over CPUs)',
        type: 'counter',
        samples: COUNTERS.map((k) => ({ labels: { event: k }, value: c[k] })),
      });
    }
  }
  metrics.push({ name: 'meshlane_map_read_errors', help: 'pinned BPF maps this scrape could not read (1 each; their figures are missing from this scrape; `meshlane status` names the error)', type: 'gauge', samples: readErrors });
  return renderPrometheus(metrics);
}
