// The HTTP side: /metrics (Prometheus text for the whole process), /healthz
// (the process answers) and /readyz (containerd reachable and restore done).
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { CodedError, ErrorCode, silentLogger, type Logger } from '../containerd/index.js';
import type { Coordinator } from '../coordinator/index.js';

export class MetricsServer {
  readonly #server: http.Server;
  readonly #co: Coordinator;
  readonly #log: Logger;

  constructor(coordinator: Coordinator, logger: Logger = silentLogger) {
    this.#co = coordinator;
    this.#log = logger;
    this.#server = http.createServer((req, res) => void this.#handle(req, res));
  }

  async #handle(req: http.IncomingMessage, res: http.ServerResponse): Promise<void> {
    const path = (req.url ?? '/').split('?')[0];
    try {
      if (req.method !== 'GET' && req.method !== 'HEAD') {
        res.writeHead(405, { allow: 'GET, HEAD' }).end();
      } else if (path === '/metrics') {
        const { contentType, body } = await this.#co.renderMetrics();
        res.writeHead(200, { 'content-type': contentType }).end(body);
      } else if (path === '/healthz') {
        res.writeHead(200, { 'content-type': 'text/plain' }).end('ok\n');
      } else if (path === '/readyz') {
        const ready = this.#co.ready && (await this.#co.containerdHealthy());
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
      this.#server.once('error', reject);
      this.#server.listen(Number(m[2]), host, () => {
        this.#server.off('error', reject);
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
