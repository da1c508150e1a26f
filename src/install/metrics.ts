// Prometheus text exposition (format 0.0.4) for the installer's /metrics.
// A handful of gauges and counters: written here rather than pulled in with a
// client library, with the format's escaping rules.

export interface Sample {
  labels?: Readonly<Record<string, string>>;
  value: number | bigint;
}

export interface Metric {
  name: string;
  help: string;
  type: 'gauge' | 'counter';
  samples: readonly Sample[];
}

const NAME = /^[a-zA-Z_:][a-zA-Z0-9_:]*$/;
const LABEL = /^[a-zA-Z_][a-zA-Z0-9_]*$/;

const escapeHelp = (s: string): string => s.replace(/\\/g, '\\\\').replace(/\n/g, '\\n');
const escapeValue = (s: string): string => s.replace(/\\/g, '\\\\').replace(/\n/g, '\\n').replace(/"/g, '\\"');

function formatValue(v: number | bigint): string {
  if (typeof v === 'bigint') return v.toString();
  if (Number.isNaN(v)) return 'NaN';
  if (v === Infinity) return '+Inf';
  if (v === -Infinity) return '-Inf';
  return String(v);
}

export function renderPrometheus(metrics: readonly Metric[]): string {
  const out: string[] = [];
  for (const m of metrics) {
    if (!NAME.test(m.name)) throw new Error(`bad metric name ${JSON.stringify(m.name)}`);
    out.push(`# HELP ${m.name} ${escapeHelp(m.help)}`, `# TYPE ${m.name} ${m.type}`);
    for (const s of m.samples) {
      const labels = Object.entries(s.labels ?? {});
      for (const [k] of labels) if (!LABEL.test(k)) throw new Error(`bad label name ${JSON.stringify(k)} on ${m.name}`);
      const l = labels.length ? `{${labels.map(([k, v]) => `${k}="${escapeValue(v)}"`).join(',')}}` : '';
      out.push(`${m.name}${l} ${formatValue(s.value)}`);
    }
  }
  return `${out.join('\n')}\n`;
}
