// The containerd layer's public surface; other layers import from here only.
export { connect, ContainerdClient, type ServingStatus } from './client.js';
export type { CallOptions, ConnectionOptions } from './connection.js';
export { normalizeAddress } from './connection.js';
export type { Container, NewContainer } from './containers.js';
export type { Process, NewTask, NewExecProcess, ProcessOptions, ExitInfo, TaskStatus } from './tasks.js';
export { decodeCgroupMetrics, CGROUP_V1_METRICS_TYPE, CGROUP_V2_METRICS_TYPE, type TaskMetrics } from './cgroup-metrics.js';
export type { ContentInfo, ContentWriter, WriteOptions } from './content.js';
export type { Descriptor, ImageRecord } from './images.js';
export type { Mount, SnapshotInfo, SnapshotKind } from './snapshots.js';
export type { Lease } from './leases.js';
export {
  EventSubscription,
  taskEventFilters,
  exitEventFilters,
  type ContainerdEvent,
  type SubscribeOptions,
  type TaskExit,
  type TaskStart,
  type TaskCreate,
  type TaskDelete,
  type TaskOOM,
} from './events.js';
export { CodedError, ContainerdError, ErrorCode, codeOfGrpcStatus, errorCode, fromGrpcError, ignoreNotFound, isErrorCode, isNotFound, isAlreadyExists } from './errors.js';
export {
  packSpec,
  unpackSpec,
  packProcessSpec,
  packLinuxResources,
  packRuncOptions,
  unpackRuncOptions,
  OCI_SPEC_TYPE_URL,
  OCI_PROCESS_TYPE_URL,
  OCI_LINUX_RESOURCES_TYPE_URL,
  RUNC_OPTIONS_TYPE,
  type Any,
  type RuncOptions,
} from './any.js';
export { ContainerdSupervisor, type SupervisorOptions } from './supervisor.js';
export { EventLoop, type EventLoopOptions } from './event-loop.js';
export { silentLogger, type Logger } from '../common/log.js';
