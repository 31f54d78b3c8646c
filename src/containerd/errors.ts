// containerd's errors: what a gRPC call throws becomes a ContainerdError
// with one of the shared codes (src/common/errors.ts), here and nowhere else.
import { CodedError, ErrorCode } from '../common/errors.js';
import { codeOfGrpcStatus } from '../common/grpc-status.js';

export { CodedError, ErrorCode, codeOfGrpcStatus };
export { errorCode, isErrorCode, isNotFound, isAlreadyExists, ignoreNotFound } from '../common/errors.js';

/** Raised by the containerd layer (mapped gRPC errors, bad connection options). */
export class ContainerdError extends CodedError {
  override readonly name = 'ContainerdError';
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
