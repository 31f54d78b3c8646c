// The data dir's layout, worked out here only:
//
//   <data dir>/plugind.sock              the API socket (default address)
//   <data dir>/plugind.pid               one plugind per data dir
//   <data dir>/containerd/               the embedded containerd
//   <data dir>/plugins/<namespace>/      one namespace's plugins:
//       pipes/  fifo/  logs/  told-exits  fifo-keeper.pid
//       exec/<id>.<exec id>/   an exec'd process's FIFOs, while it runs
//       run/<id>/          a bundle plugin's runtime dir (0700), its /run/docker/plugins
//       propagated/<id>/   a bundle plugin's PropagatedMount, shared with the host
import { join } from 'node:path';

export const apiSocketPath = (dataDir: string): string => join(dataDir, 'plugind.sock');
export const pidFilePath = (dataDir: string): string => join(dataDir, 'plugind.pid');
export const containerdDir = (dataDir: string): string => join(dataDir, 'containerd');

/** Where a namespace's plugin FIFOs, logs and told exits live. */
export function pluginsDir(dataDir: string, namespace: string): string {
  return join(dataDir, 'plugins', namespace);
}

export interface PluginPaths {
  /** Pipe sets, `<id>.<random>`: a symlink to the pid of the set's holder (see executor/pipes.ts). */
  pipes: string;
  /** FIFO sets, `<id>.<random>/{stdout,stderr}`; dot-named pools of spare sets. */
  fifo: string;
  /** `<id>/{stdout,stderr}.log` and their rotated files. */
  logs: string;
  /** The exits already told (see ToldExits). */
  toldExits: string;
  /** Where a plugind before 0.2 kept them; read once, then removed. */
  formerToldExits: string;
  /** The FIFO keeper's pid file. */
  keeperPid: string;
  /** FIFO pairs of exec'd processes (plugind exec, health checks), `<id>.<exec id>/{stdout,stderr}`. */
  exec: string;
  /** Docker plugins' runtime dirs, `<id>/` (mode 0700): bind-mounted at /run/docker/plugins, where the socket is made. */
  run: string;
  /** Docker plugins' propagated mounts, `<id>/`: a shared mount while the plugin runs, nothing mounted once it exits. */
  propagated: string;
}

/** What is in a namespace's plugins dir (from pluginsDir). */
export function pluginPaths(dir: string): PluginPaths {
  return {
    pipes: join(dir, 'pipes'),
    fifo: join(dir, 'fifo'),
    logs: join(dir, 'logs'),
    toldExits: join(dir, 'told-exits'),
    formerToldExits: join(dir, 'reported-exits'),
    keeperPid: join(dir, 'fifo-keeper.pid'),
    exec: join(dir, 'exec'),
    run: join(dir, 'run'),
    propagated: join(dir, 'propagated'),
  };
}
