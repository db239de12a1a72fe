/**
 * A command line that cannot be run as given: `main` prints it with `help` (default the
 * command's help) and exits 2.
 */
export class UsageError extends Error {
  override readonly name = 'UsageError';
  constructor(
    message: string,
    readonly help?: string,
  ) {
    super(message);
  }
}

/**
 * A command that failed for a reason its message explains in full (a bad input file, a
 * refused request): `main` prints the message without a stack or the help and exits 1.
 */
export class CommandError extends Error {
  override readonly name: string = 'CommandError';
}
