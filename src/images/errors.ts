// Errors of the image side (references, registries, pulls): our shared codes,
// with messages that name the reference or registry the user gave.
import { CodedError } from '../common/errors.js';

export { CodedError, ErrorCode } from '../common/errors.js';

export class ImageError extends CodedError {
  override readonly name = 'ImageError';
}
