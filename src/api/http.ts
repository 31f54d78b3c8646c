// The HTTP side: /metrics (Prometheus text for the whole process), /healthz
// (the process answers) and /readyz (containerd reachable and restore done).
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { CodedError, ErrorCode } from '../common/errors.js';
import { silentLogger, type Logger } from '../common/log.js';
import type { Coordinator } from '../coordinator/index.js';
import { listenRefused } from './wire.js';

export class MetricsServer {
  readonly #server: http.Server;
  readonly #log: Logger;
  #co: Coordinator | undefined;

  // It listens before the coordinator exists, so that a port in use fails
  // `serve` before anything is started; until attach() it is not ready.
  constructor(logger: Logger = silentLogger) {
    this.#log = logger;
    this.#server = http.createServer((req, res) => void this.#handle(req, res));
  }

  /** The coordinator whose metrics and readiness this serves. */
  attach(coordinator: Coordinator): void {
    this.#co = coordinator;
  }

  async #handle(req: http.IncomingMessage, res: http.ServerResponse): Promise<void> {
    const path = (req.url ?? '/').split('?')[0];
    const co = this.#co;
    try {
      if (req.method !== 'GET' && req.method !== 'HEAD') {
        res.writeHead(405, { allow: 'GET, HEAD' }).end();
      } else if (path === '/metrics' && !co) {
        res.writeHead(503, { 'content-type': 'text/plain' }).end('starting\n');
      } else if (path === '/metrics' && co) {
        const { contentType, body } = await co.renderMetrics();
        res.writeHead(200, { 'content-type': contentType }).end(body);
      } else if (path === '/healthz') {
        res.writeHead(200, { 'content-type': 'text/plain' }).end('ok\n');
      } else if (path === '/readyz') {
        const ready = co !== undefined && co.ready && (await co.containerdHealthy());
        res.writeHead(ready ? 200 : 503, { 'content-type': 'text/plain' }).end(ready ? 'ready\n' : 'not ready\n');
      } else {
        res.writeHead(404, { 'content-type': 'text/plain' }).end('not found: try /metrics, /healthz or /readyz\n');
      }
    } catch (err) {
      this.#log.error({ err: err as Error, path }, 'metrics request failed');
      if (!res.headersSent) res.writeHead(500).end();
    }
  }

  /** HOST:PORT; port 0 picks one. Resolves with the bound address. */
  async listen(address: string): Promise<{ host: string; port: number }> {
    const m = /^(.*):(\d+)$/.exec(address);
    if (!m) throw new CodedError(ErrorCode.InvalidArgument, `metrics address ${JSON.stringify(address)}: want HOST:PORT`);
    const host = (m[1] as string).replace(/^\[(.*)\]$/, '$1');
    await new Promise<void>((resolve, reject) => {
      const fail = (err: NodeJS.ErrnoException): void =>
        reject(listenRefused('--metrics-address', address, err));
      this.#server.once('error', fail);
      this.#server.listen(Number(m[2]), host, () => {
        this.#server.off('error', fail);
        resolve();
      });
    });
    const a = this.#server.address() as AddressInfo;
    return { host: a.address, port: a.port };
  }

  async close(): Promise<void> {
    this.#server.closeAllConnections();
    await new Promise<void>((resolve) => this.#server.close(() => resolve()));
  }
}
