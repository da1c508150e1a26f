// A minimal CRI client (runtime.v1) for the end-to-end tests: what kubelet
// calls to run a pod sandbox, over the runtime's unix socket. The API subset is
// in cri-api.proto (field numbers of k8s.io/cri-api), loaded at run time with
// @grpc/proto-loader; every call has a deadline.
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import * as grpc from '@grpc/grpc-js';
import * as protoLoader from '@grpc/proto-loader';

const PROTO = join(dirname(fileURLToPath(import.meta.url)), 'cri-api.proto');

export interface PodSandboxMetadata {
  name: string;
  uid: string;
  namespace: string;
  attempt?: number;
}

export interface PodSandboxConfig {
  metadata: PodSandboxMetadata;
  hostname?: string;
  log_directory?: string;
  labels?: Record<string, string>;
  annotations?: Record<string, string>;
  linux?: {
    cgroup_parent?: string;
    security_context?: { namespace_options?: { network?: 'POD' | 'NODE'; pid?: 'POD' | 'CONTAINER' | 'NODE'; ipc?: 'POD' | 'NODE' } };
  };
}

export interface VersionResponse {
  version: string;
  runtime_name: string;
  runtime_version: string;
  runtime_api_version: string;
}

export interface PodSandboxStatus {
  id: string;
  metadata: PodSandboxMetadata | null;
  state: 'SANDBOX_READY' | 'SANDBOX_NOTREADY';
  created_at: string;
  network: { ip: string; additional_ips: Array<{ ip: string }> } | null;
  labels: Record<string, string>;
  annotations: Record<string, string>;
}

export interface PodSandboxStatusResponse {
  status: PodSandboxStatus | null;
  /** verbose only: containerd puts its sandbox info (pid, runtime spec, CNI result) as JSON under "info" */
  info: Record<string, string>;
}

export interface PodSandboxSummary {
  id: string;
  metadata: PodSandboxMetadata | null;
  state: 'SANDBOX_READY' | 'SANDBOX_NOTREADY';
}

export interface RuntimeCondition {
  type: string;
  status: boolean;
  reason: string;
  message: string;
}

type Callback<T> = (err: grpc.ServiceError | null, value?: T) => void;
type Method = (req: unknown, meta: grpc.Metadata, opts: grpc.CallOptions, cb: Callback<unknown>) => grpc.ClientUnaryCall;

export class CriError extends Error {
  readonly code: grpc.status;
  constructor(method: string, err: grpc.ServiceError) {
    super(`CRI ${method}: ${grpc.status[err.code] ?? err.code}: ${err.details || err.message}`);
    this.code = err.code;
  }
}

function loadServices(): { runtime: grpc.ServiceClientConstructor; image: grpc.ServiceClientConstructor } {
  const def = protoLoader.loadSync(PROTO, { keepCase: true, longs: String, enums: String, defaults: true, oneofs: true });
  const pkg = grpc.loadPackageDefinition(def) as unknown as { runtime: { v1: Record<string, grpc.ServiceClientConstructor> } };
  const runtime = pkg.runtime.v1['RuntimeService'];
  const image = pkg.runtime.v1['ImageService'];
  if (!runtime || !image) throw new Error(`${PROTO}: RuntimeService/ImageService missing`);
  return { runtime, image };
}

export class CriClient {
  readonly socket: string;
  readonly #runtime: grpc.Client;
  readonly #image: grpc.Client;
  readonly #timeoutMs: number;

  constructor(socket: string, opts: { timeoutMs?: number } = {}) {
    this.socket = socket;
    this.#timeoutMs = opts.timeoutMs ?? 30_000;
    const { runtime, image } = loadServices();
    const target = `unix://${socket}`;
    this.#runtime = new runtime(target, grpc.credentials.createInsecure());
    this.#image = new image(target, grpc.credentials.createInsecure(), {});
  }

  #call<T>(client: grpc.Client, method: string, req: unknown, timeoutMs = this.#timeoutMs): Promise<T> {
    const fn = (client as unknown as Record<string, Method>)[method];
    if (typeof fn !== 'function') return Promise.reject(new Error(`no CRI method ${method}`));
    return new Promise<T>((resolve, reject) => {
      fn.call(client, req, new grpc.Metadata(), { deadline: Date.now() + timeoutMs }, (err, value) => {
        if (err) reject(new CriError(method, err));
        else resolve(value as T);
      });
    });
  }

  version(timeoutMs?: number): Promise<VersionResponse> {
    return this.#call(this.#runtime, 'Version', { version: 'v1' }, timeoutMs);
  }

  async conditions(): Promise<RuntimeCondition[]> {
    const r = await this.#call<{ status: { conditions: RuntimeCondition[] } | null }>(this.#runtime, 'Status', { verbose: false });
    return r.status?.conditions ?? [];
  }

  /** The CNI config the CRI plugin has loaded now (Status, verbose: info["cniconfig"], JSON). */
  async cniConfig(): Promise<string> {
    const r = await this.#call<{ info: Record<string, string> }>(this.#runtime, 'Status', { verbose: true });
    return r.info['cniconfig'] ?? '';
  }

  async imageExists(image: string): Promise<boolean> {
    const r = await this.#call<{ image: { id: string } | null }>(this.#image, 'ImageStatus', { image: { image } });
    return r.image !== null && r.image.id !== '';
  }

  async runPodSandbox(config: PodSandboxConfig, timeoutMs?: number): Promise<string> {
    const r = await this.#call<{ pod_sandbox_id: string }>(this.#runtime, 'RunPodSandbox', { config, runtime_handler: '' }, timeoutMs);
    return r.pod_sandbox_id;
  }

  podSandboxStatus(id: string, verbose = false): Promise<PodSandboxStatusResponse> {
    return this.#call(this.#runtime, 'PodSandboxStatus', { pod_sandbox_id: id, verbose });
  }

  async listPodSandbox(): Promise<PodSandboxSummary[]> {
    const r = await this.#call<{ items: PodSandboxSummary[] }>(this.#runtime, 'ListPodSandbox', {});
    return r.items;
  }

  async stopPodSandbox(id: string): Promise<void> {
    await this.#call(this.#runtime, 'StopPodSandbox', { pod_sandbox_id: id });
  }

  async removePodSandbox(id: string): Promise<void> {
    await this.#call(this.#runtime, 'RemovePodSandbox', { pod_sandbox_id: id });
  }

  close(): void {
    this.#runtime.close();
    this.#image.close();
  }
}
