// The entry point of the containerd layer: connect() gives one client per
// connection with a sub-client per resource, as containerd's Go client does.
import { Connection, type CallOptions, type ConnectionOptions } from './connection.js';
import { Containers } from './containers.js';
import { Content } from './content.js';
import { Diff } from './diff.js';
import { Events } from './events.js';
import { Images } from './images.js';
import { Leases } from './leases.js';
import { Snapshots } from './snapshots.js';
import { Tasks } from './tasks.js';

const HEALTH = 'grpc.health.v1.Health';
const VERSION = 'containerd.services.version.v1.Version';

export type ServingStatus = 'UNKNOWN' | 'SERVING' | 'NOT_SERVING' | 'SERVICE_UNKNOWN';

export class ContainerdClient {
  readonly containers: Containers;
  readonly tasks: Tasks;
  readonly events: Events;
  readonly content: Content;
  readonly images: Images;
  readonly snapshots: Snapshots;
  readonly diff: Diff;
  readonly leases: Leases;
  readonly #conn: Connection;

  constructor(options: ConnectionOptions) {
    this.#conn = new Connection(options);
    this.containers = new Containers(this.#conn);
    this.tasks = new Tasks(this.#conn);
    this.events = new Events(this.#conn);
    this.content = new Content(this.#conn);
    this.images = new Images(this.#conn);
    this.snapshots = new Snapshots(this.#conn);
    this.diff = new Diff(this.#conn);
    this.leases = new Leases(this.#conn);
  }

  get address(): string {
    return this.#conn.address;
  }

  get closed(): boolean {
    return this.#conn.closed;
  }

  get namespace(): string {
    return this.#conn.namespace;
  }

  /** A client for another namespace on a connection of its own. */
  withNamespace(namespace: string): ContainerdClient {
    return new ContainerdClient({ address: this.#conn.address, namespace, timeoutMs: this.#conn.timeoutMs });
  }

  async version(options?: CallOptions): Promise<{ version: string; revision: string }> {
    return this.#conn.unary(VERSION, 'Version', {}, 'containerd version', options);
  }

  /** containerd's gRPC health service; resolves to its status, rejects when unreachable. */
  async health(options?: CallOptions): Promise<ServingStatus> {
    const res = await this.#conn.unary<{ status: ServingStatus }>(HEALTH, 'Check', { service: '' }, 'containerd health', options);
    return res.status;
  }

  /** Closes the connection: calls in flight fail, subscriptions end. Idempotent. */
  close(): void {
    this.#conn.close();
  }
}

export function connect(options: ConnectionOptions): ContainerdClient {
  return new ContainerdClient(options);
}
