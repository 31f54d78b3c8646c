// One error model for everything that talks to containerd: gRPC status codes
// are mapped to containerd's error classes here and nowhere else.
import { status as GrpcStatus } from '@grpc/grpc-js';

/** containerd's error classes (its errdefs package), as stable codes. */
export const ErrorCode = {
  NotFound: 'NotFound',
  AlreadyExists: 'AlreadyExists',
  InvalidArgument: 'InvalidArgument',
  FailedPrecondition: 'FailedPrecondition',
  Unavailable: 'Unavailable',
  DeadlineExceeded: 'DeadlineExceeded',
  Canceled: 'Canceled',
  Unknown: 'Unknown',
} as const;
export type ErrorCode = (typeof ErrorCode)[keyof typeof ErrorCode];

/** An error with one of the codes above; every layer's errors derive from it. */
export class CodedError extends Error {
  readonly code: ErrorCode;

  constructor(code: ErrorCode, message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.code = code;
  }
}

/** Raised by the containerd layer (mapped gRPC errors, bad connection options). */
export class ContainerdError extends CodedError {
  override readonly name = 'ContainerdError';
}

/** The error's code when it carries one of ours, else Unknown. */
export function errorCode(err: unknown): ErrorCode {
  const code = (err as { code?: unknown } | null)?.code;
  return typeof code === 'string' && (Object.values(ErrorCode) as string[]).includes(code) ? (code as ErrorCode) : ErrorCode.Unknown;
}

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

/** Our code for a gRPC status code (containerd's or plugind's API). */
export function codeOfGrpcStatus(status: number): ErrorCode {
  return fromGrpc[status as GrpcStatus] ?? ErrorCode.Unknown;
}

interface GrpcServiceError extends Error {
  code: number;
  details?: string;
}

function isGrpcError(err: unknown): err is GrpcServiceError {
  return err instanceof Error && typeof (err as Partial<GrpcServiceError>).code === 'number';
}

/**
 * Maps anything thrown by a gRPC call to a ContainerdError. `what` names the
 * operation and its object ("get container foo") and leads the message;
 * `timeoutMs` is the call's deadline, named when it passes.
 */
export function fromGrpcError(err: unknown, what: string, timeoutMs?: number): ContainerdError {
  if (err instanceof ContainerdError) return err;
  if (isGrpcError(err)) {
    const code = codeOfGrpcStatus(err.code);
    // grpc-js words a passed deadline with its own timings (metadata
    // filters, LB pick, remote_addr): say what it means instead.
    const detail =
      code === ErrorCode.DeadlineExceeded
        ? `containerd is not answering${timeoutMs === undefined ? '' : ` (no reply within ${timeoutMs / 1000} s)`}`
        : err.details || err.message;
    return new ContainerdError(code, `${what}: ${detail}`, { cause: err });
  }
  const message = err instanceof Error ? err.message : String(err);
  return new ContainerdError(ErrorCode.Unknown, `${what}: ${message}`, { cause: err });
}

export function isErrorCode(err: unknown, code: ErrorCode): boolean {
  return err instanceof ContainerdError && err.code === code;
}

export const isNotFound = (err: unknown): boolean => isErrorCode(err, ErrorCode.NotFound);
export const isAlreadyExists = (err: unknown): boolean => isErrorCode(err, ErrorCode.AlreadyExists);
