/**
 * An error in AWS's own shape: awsJson answers `{__type, message}` (and `x-amzn-errortype`), awsQuery an
 * `<ErrorResponse>`; the SDK turns either into the typed exception named by `type`.
 */
export class AwsError extends Error {
  constructor(
    readonly type: string,
    message: string,
    readonly status = 400,
  ) {
    super(message);
  }
}

/** AWS's own summary line over the model's validation messages. */
export function validationError(errs: string[]): AwsError {
  const n = errs.length;
  return new AwsError('ValidationException', `${n} validation error${n === 1 ? '' : 's'} detected: ${errs.join('; ')}`);
}
