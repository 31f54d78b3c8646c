// Every case of the restore decision: what we know × what containerd says of
// the task × what the labels record. The pure function only; no containerd.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import type { TaskStatus } from '../../src/containerd/index.js';
import { decideRestore, type KnownFacts, type RestoreFacts } from '../../src/executor/restore-decision.js';

const PID = 100;
const OTHER = 200;

// What we may know of the plugin.
const unknown = undefined;
const running = (pid = PID): KnownFacts => ({ state: 'running', pid, reaped: false });
const paused = (pid = PID): KnownFacts => ({ state: 'paused', pid, reaped: false });
const stopped = (reaped: boolean, exitPid = PID): KnownFacts => ({ state: 'stopped', pid: exitPid, reaped, exit: { pid: exitPid } });
const task = (status: TaskStatus, pid = PID) => ({ status, pid });
const recorded = (pid = PID) => ({ pid });

type Case = [name: string, facts: RestoreFacts, expected: Record<string, unknown>];

const cases: Case[] = [
  // No task in containerd.
  ['no task, stopped and reaped: nothing', { known: stopped(true) }, { do: 'nothing', outcome: 'stopped' }],
  ['no task, stopped, reap failed: finish it', { known: stopped(false) }, { do: 'finish-reap', taskSet: false, outcome: 'stopped' }],
  ['no task, stopped, recorded too: finish the reap', { known: stopped(false), recorded: recorded() }, { do: 'finish-reap', taskSet: false, outcome: 'stopped' }],
  ['no task, unknown, exit recorded: adopt it stopped', { known: unknown, recorded: recorded() }, { do: 'adopt-recorded', outcome: 'stopped' }],
  ['no task, unknown, nothing recorded: vanished, tracked anew', { known: unknown }, { do: 'report-vanished', track: true, outcome: 'exited' }],
  ['no task, running: vanished', { known: running() }, { do: 'report-vanished', track: false, outcome: 'exited' }],
  ['no task, running, recorded: vanished all the same', { known: running(), recorded: recorded() }, { do: 'report-vanished', track: false, outcome: 'exited' }],
  ['no task, paused: vanished', { known: paused() }, { do: 'report-vanished', track: false, outcome: 'exited' }],
  // A created task: never started.
  ['created task, stopped, reaped: drop the late task', { known: stopped(true), task: task('created', OTHER) }, { do: 'drop-late-task', reap: false, outcome: 'stopped' }],
  ['created task, stopped, not reaped: drop it and reap', { known: stopped(false), task: task('created', OTHER) }, { do: 'drop-late-task', reap: true, outcome: 'stopped' }],
  ['created task, unknown: half-created, removed', { known: unknown, task: task('created') }, { do: 'remove-half-created', outcome: 'removed' }],
  ['created task, unknown, recorded: removed all the same', { known: unknown, task: task('created'), recorded: recorded() }, { do: 'remove-half-created', outcome: 'removed' }],
  ['created task, known created/running: removed', { known: running(), task: task('created') }, { do: 'remove-half-created', outcome: 'removed' }],
  // Known stopped, and its reported exit is this task's.
  ['stopped task of the told exit, reaped: nothing', { known: stopped(true), task: task('stopped') }, { do: 'nothing', outcome: 'stopped' }],
  ['stopped task of the told exit, not reaped: finish with its FIFOs', { known: stopped(false), task: task('stopped') }, { do: 'finish-reap', taskSet: true, outcome: 'stopped' }],
  ['running task with the told exit\'s pid, not reaped: finish the reap', { known: stopped(false), task: task('running') }, { do: 'finish-reap', taskSet: true, outcome: 'stopped' }],
  // Exit recorded on the labels for this task, task not deleted.
  ['stopped task, unknown, recorded for it: reap it', { known: unknown, task: task('stopped'), recorded: recorded() }, { do: 'reap-recorded', outcome: 'stopped' }],
  ['stopped task, running, recorded for it: reap it', { known: running(), task: task('stopped'), recorded: recorded() }, { do: 'reap-recorded', outcome: 'stopped' }],
  ['stopped task, known another pid, recorded: attach anew, exited', { known: running(OTHER), task: task('stopped'), recorded: recorded() }, { do: 'attach', fresh: true, state: 'running', outcome: 'exited' }],
  ['stopped task, recorded for another pid: attach, exited', { known: unknown, task: task('stopped'), recorded: recorded(OTHER) }, { do: 'attach', fresh: true, state: 'running', outcome: 'exited' }],
  ['stopped task, known stopped with another exit, recorded for this task: a new record, exited', { known: stopped(true, OTHER), task: task('stopped'), recorded: recorded() }, { do: 'attach', fresh: true, state: 'running', outcome: 'exited' }],
  // Attach: live tasks, and stopped tasks whose exit is not yet handled.
  ['stopped task, running, nothing recorded: exit not yet handled', { known: running(), task: task('stopped') }, { do: 'attach', fresh: false, state: 'running', outcome: 'exited' }],
  ['stopped task, unknown, nothing recorded: attach, exited', { known: unknown, task: task('stopped') }, { do: 'attach', fresh: true, state: 'running', outcome: 'exited' }],
  ['running task, unknown: attach anew', { known: unknown, task: task('running') }, { do: 'attach', fresh: true, state: 'running', outcome: 'running' }],
  ['running task, unknown, old exit recorded: attach anew', { known: unknown, task: task('running'), recorded: recorded(OTHER) }, { do: 'attach', fresh: true, state: 'running', outcome: 'running' }],
  ['running task, known same pid: keep the record', { known: running(), task: task('running') }, { do: 'attach', fresh: false, state: 'running', outcome: 'running' }],
  ['running task, known another pid: a new record', { known: running(OTHER), task: task('running') }, { do: 'attach', fresh: true, state: 'running', outcome: 'running' }],
  ['running task, stopped with another exit: a new record', { known: stopped(true, OTHER), task: task('running') }, { do: 'attach', fresh: true, state: 'running', outcome: 'running' }],
  ['paused task, known running: paused', { known: running(), task: task('paused') }, { do: 'attach', fresh: false, state: 'paused', outcome: 'running' }],
  ['pausing task, unknown: paused', { known: unknown, task: task('pausing') }, { do: 'attach', fresh: true, state: 'paused', outcome: 'running' }],
  ['running task, known paused: running again', { known: paused(), task: task('running') }, { do: 'attach', fresh: false, state: 'running', outcome: 'running' }],
  ['unknown task status, unknown: attach as running', { known: unknown, task: task('unknown') }, { do: 'attach', fresh: true, state: 'running', outcome: 'running' }],
];

for (const [name, facts, expected] of cases) {
  test(`restore decision: ${name}`, () => {
    const action = decideRestore(facts);
    // The action hands back the facts it acts on; the table checks the rest.
    const { known, task: t, recorded: r, ...decided } = action as typeof action & { known?: unknown; task?: unknown; recorded?: unknown };
    assert.deepEqual(decided, expected);
    if (known !== undefined) assert.equal(known, facts.known);
    if (t !== undefined) assert.equal(t, facts.task);
    if (r !== undefined) assert.equal(r, facts.recorded);
  });
}
