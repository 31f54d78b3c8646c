// What restoring one plugin must do, decided from what we know of it, what
// containerd says of its task and what its labels record. Pure: restore.ts
// gathers the facts and carries the action out.
import type { TaskStatus } from '../containerd/index.js';
import type { PluginState } from './plugin.js';

export interface KnownFacts {
  state: PluginState;
  pid: number;
  reaped: boolean;
  exit?: { pid: number } | undefined;
}
export interface TaskFacts {
  status: TaskStatus;
  pid: number;
}
export interface RecordedFacts {
  pid: number;
}

/** Generic so that an action hands back the very objects it was decided on. */
export interface RestoreFacts<K extends KnownFacts = KnownFacts, T extends TaskFacts = TaskFacts, R extends RecordedFacts = RecordedFacts> {
  /** The plugin as this executor tracks it, if it does. */
  known?: K | undefined;
  /** Its task as containerd reports it; none when containerd has no task. */
  task?: T | undefined;
  /** The exit recorded in the container's labels, if any. */
  recorded?: R | undefined;
}

export type RestoreOutcome = 'running' | 'stopped' | 'exited' | 'removed';

export type RestoreAction<K = KnownFacts, T = TaskFacts, R = RecordedFacts> =
  /** Stopped and reaped already: nothing to do. */
  | { do: 'nothing'; outcome: 'stopped' }
  /** Its exit was told but reaping failed: finish that (freeing the task's FIFOs, if it has a task), tell nothing. */
  | { do: 'finish-reap'; known: K; taskSet: boolean; outcome: 'stopped' }
  /** Told, recorded and reaped before a restart: rebuild it stopped from its labels. */
  | { do: 'adopt-recorded'; recorded: R; outcome: 'stopped' }
  /** Its task vanished with no exit on record: report it exited (status unknown), look again for a late task. */
  | { do: 'report-vanished'; track: boolean; outcome: 'exited' }
  /** A task made after the plugin was told exited: delete it, the exit stays on record. */
  | { do: 'drop-late-task'; known: K; task: T; reap: boolean; outcome: 'stopped' }
  /** Created but never started (plugind died mid-create): remove everything. */
  | { do: 'remove-half-created'; task: T; outcome: 'removed' }
  /** Exit told and recorded, task not yet deleted: reap it, draining what waits in the pipe. */
  | { do: 'reap-recorded'; task: T; recorded: R; outcome: 'stopped' }
  /** A live task (or a stopped one whose exit is not yet told): copy its output; `fresh` starts a new record. */
  | { do: 'attach'; task: T; fresh: boolean; state: 'running' | 'paused'; outcome: 'running' | 'exited' };

export function decideRestore<K extends KnownFacts, T extends TaskFacts, R extends RecordedFacts>({ known, task, recorded }: RestoreFacts<K, T, R>): RestoreAction<K, T, R> {
  const knownStopped = known?.state === 'stopped';
  if (!task) {
    if (known && knownStopped) return known.reaped ? { do: 'nothing', outcome: 'stopped' } : { do: 'finish-reap', known, taskSet: false, outcome: 'stopped' };
    if (recorded && !known) return { do: 'adopt-recorded', recorded, outcome: 'stopped' };
    return { do: 'report-vanished', track: !known, outcome: 'exited' };
  }
  if (task.status === 'created') {
    if (known && knownStopped) return { do: 'drop-late-task', known, task, reap: !known.reaped, outcome: 'stopped' };
    return { do: 'remove-half-created', task, outcome: 'removed' };
  }
  if (known && knownStopped && known.exit?.pid === task.pid) {
    return known.reaped ? { do: 'nothing', outcome: 'stopped' } : { do: 'finish-reap', known, taskSet: true, outcome: 'stopped' };
  }
  if (task.status === 'stopped' && recorded?.pid === task.pid && (!known || known.pid === task.pid)) {
    return { do: 'reap-recorded', task, recorded, outcome: 'stopped' };
  }
  // A stopped task is still running to us until its exit is told.
  return {
    do: 'attach',
    task,
    fresh: !known || knownStopped || known.pid !== task.pid,
    state: task.status === 'paused' || task.status === 'pausing' ? 'paused' : 'running',
    outcome: task.status === 'stopped' ? 'exited' : 'running',
  };
}
