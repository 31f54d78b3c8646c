// One error model for every layer: containerd's closed set of error classes
// (its errdefs package) as stable codes, and the predicates that match them.
// No layer's transport is known here; each maps its own at its boundary.

/** containerd's error classes, as stable codes. */
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

const CODES = new Set<string>(Object.values(ErrorCode));

/** An error with one of the codes above; every layer's errors derive from it. */
export class CodedError extends Error {
  readonly code: ErrorCode;

  constructor(code: ErrorCode, message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.code = code;
  }
}

function codeOf(err: unknown): ErrorCode | undefined {
  const code = (err as { code?: unknown } | null)?.code;
  return typeof code === 'string' && CODES.has(code) ? (code as ErrorCode) : undefined;
}

/** The error's own code when it carries one of ours, else Unknown. */
export function errorCode(err: unknown): ErrorCode {
  return codeOf(err) ?? ErrorCode.Unknown;
}

// Deep enough for any chain we build; a bound, because a cause can loop.
const MAX_CAUSES = 16;

/**
 * Whether the error, or any error in its `cause` chain, has the code, as
 * containerd's errdefs.IsNotFound & co. unwrap: whoever wrapped it, the
 * class of the failure is still seen. Matches on `code`, also after a
 * thread hop rebuilt the error as a plain one.
 */
export function isErrorCode(err: unknown, code: ErrorCode): boolean {
  let e: unknown = err;
  for (let i = 0; i < MAX_CAUSES && e instanceof Object; i++) {
    if (codeOf(e) === code) return true;
    e = (e as { cause?: unknown }).cause;
  }
  return false;
}

export const isNotFound = (err: unknown): boolean => isErrorCode(err, ErrorCode.NotFound);
export const isAlreadyExists = (err: unknown): boolean => isErrorCode(err, ErrorCode.AlreadyExists);

/** For `.catch(ignoreNotFound)`: what is gone already is no failure. */
export function ignoreNotFound(err: unknown): undefined {
  if (isNotFound(err)) return undefined;
  throw err;
}

/** INVALID_ARGUMENT with a message that names what the user typed. */
export const invalidInput = (message: string): CodedError => new CodedError(ErrorCode.InvalidArgument, message);
