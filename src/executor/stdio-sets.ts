// Where a plugin's stdout and stderr come from: a pipe set (the default; the
// plugin writes into pipes plugind reads, see pipes.ts) or a FIFO set
// (containerd's usual IO: the shim copies the plugin's pipes into FIFOs,
// see fifo.ts). New tasks get sets of the configured kind; a task found by
// a restore is read the way it was made, whichever kind that is.
import { close as closeCb } from 'node:fs';
import { join } from 'node:path';
import type { PluginPaths } from '../common/paths.js';
import { FifoPool, idOfSet, openReadEnd, type FifoSet } from './fifo.js';
import { PipeSets, type PipeSet } from './pipes.js';
import type { StreamName } from './stdio.js';

export type StdioSet = FifoSet | PipeSet;

/** `pipes`: straight from the plugin, through plugind-pipe-holder; `fifos`: copied by the shim into FIFOs. */
export type StdioVia = 'pipes' | 'fifos';
export const STDIO_VIA: readonly StdioVia[] = ['pipes', 'fifos'];

export class StdioSets {
  readonly fifos: FifoPool;
  readonly pipes: PipeSets;
  readonly via: StdioVia;

  constructor(fifos: FifoPool, pipes: PipeSets, via: StdioVia) {
    this.fifos = fifos;
    this.pipes = pipes;
    this.via = via;
  }

  /** The sets of a plugins dir: FIFO sets in its fifo/ (this pool's own dir), pipe sets in its pipes/. */
  static under(paths: PluginPaths, o: { poolName: string; via: StdioVia; holder: string }): StdioSets {
    return new StdioSets(new FifoPool({ root: paths.fifo, poolName: o.poolName }), new PipeSets(paths.pipes, o.holder), o.via);
  }

  /** A new set for a task; the name (setName) must not be in use. */
  take(name: string): Promise<StdioSet> {
    return this.via === 'pipes' ? this.pipes.take(name) : this.fifos.take(name);
  }

  /** The set a task's stdout names, if it is one of ours. */
  setOf(taskStdout: string): StdioSet | undefined {
    return this.pipes.setOf(taskStdout) ?? this.fifos.setOf(taskStdout);
  }

  /** The file or dir that is the set: removing it removes the set. */
  static pathOf(set: StdioSet): string {
    return PipeSets.is(set) ? set.link : set.dir;
  }

  /** What Tasks.Create is given as the task's stdout and stderr. */
  static taskIO(set: StdioSet): { stdout: string; stderr: string } {
    return PipeSets.is(set) ? { stdout: set.uri, stderr: set.uri } : { stdout: set.stdout, stderr: set.stderr };
  }

  /**
   * Whether the set's read ends open only once its task exists: a pipe
   * set's pipes are made by the shim. A FIFO set's are opened before, so
   * that nothing the plugin writes can find no reader.
   */
  static opensAfterCreate(set: StdioSet): boolean {
    return PipeSets.is(set);
  }

  /** Read ends of both streams, O_NONBLOCK. */
  async openReadEnds(set: StdioSet): Promise<Record<StreamName, number>> {
    if (PipeSets.is(set)) return this.pipes.openReadEnds(set);
    const [stdout, stderr] = await Promise.allSettled([openReadEnd(set.stdout), openReadEnd(set.stderr)]);
    if (stdout.status === 'fulfilled' && stderr.status === 'fulfilled') return { stdout: stdout.value, stderr: stderr.value };
    for (const r of [stdout, stderr]) if (r.status === 'fulfilled') closeCb(r.value, () => {});
    throw (stdout.status === 'rejected' ? stdout.reason : (stderr as PromiseRejectedResult).reason) as Error;
  }

  /** Removes a set; a FIFO set whose streams ended cleanly can go back to its pool instead. */
  remove(set: StdioSet, how: 'remove' | 'recycle' = 'remove'): Promise<void> {
    if (PipeSets.is(set)) return this.pipes.remove(set);
    return how === 'recycle' ? this.fifos.recycle(set) : this.fifos.remove(set);
  }

  /** Every set made for id, of either kind, in use or left behind. */
  async setsOf(id: string): Promise<StdioSet[]> {
    return (await this.all()).filter((s) => s.id === id).map((s) => s.set);
  }

  /** Every set of either kind, with the id it was made for. */
  async all(): Promise<Array<{ id: string; set: StdioSet }>> {
    const [fifoNames, pipeNames] = await Promise.all([this.fifos.list(), this.pipes.list()]);
    const sets: Array<{ id: string; set: StdioSet }> = [];
    for (const name of fifoNames) {
      const set = this.fifos.setOf(join(this.fifos.root, name, 'stdout'));
      if (set) sets.push({ id: idOfSet(name), set });
    }
    for (const name of pipeNames) sets.push({ id: idOfSet(name), set: this.pipes.setNamed(name) });
    return sets;
  }
}
