// gRPC status codes and our error codes, both ways: containerd's API and
// plugind's map alike, so the table is kept once.
import { status as GrpcStatus } from '@grpc/grpc-js';
import { ErrorCode, errorCode } from './errors.js';

const fromGrpc: Partial<Record<GrpcStatus, ErrorCode>> = {
  [GrpcStatus.NOT_FOUND]: ErrorCode.NotFound,
  [GrpcStatus.ALREADY_EXISTS]: ErrorCode.AlreadyExists,
  [GrpcStatus.INVALID_ARGUMENT]: ErrorCode.InvalidArgument,
  [GrpcStatus.OUT_OF_RANGE]: ErrorCode.InvalidArgument,
  [GrpcStatus.FAILED_PRECONDITION]: ErrorCode.FailedPrecondition,
  [GrpcStatus.UNAVAILABLE]: ErrorCode.Unavailable,
  [GrpcStatus.DEADLINE_EXCEEDED]: ErrorCode.DeadlineExceeded,
  [GrpcStatus.CANCELLED]: ErrorCode.Canceled,
};

const toGrpc: Record<ErrorCode, GrpcStatus> = {
  NotFound: GrpcStatus.NOT_FOUND,
  AlreadyExists: GrpcStatus.ALREADY_EXISTS,
  InvalidArgument: GrpcStatus.INVALID_ARGUMENT,
  FailedPrecondition: GrpcStatus.FAILED_PRECONDITION,
  Unavailable: GrpcStatus.UNAVAILABLE,
  DeadlineExceeded: GrpcStatus.DEADLINE_EXCEEDED,
  Canceled: GrpcStatus.CANCELLED,
  Unknown: GrpcStatus.UNKNOWN,
};

/** Our code for a gRPC status code (containerd's or plugind's API). */
export function codeOfGrpcStatus(status: number): ErrorCode {
  return fromGrpc[status as GrpcStatus] ?? ErrorCode.Unknown;
}

/** The gRPC status code for an error, by its code. */
export function grpcStatusOf(err: unknown): GrpcStatus {
  return toGrpc[errorCode(err)];
}
