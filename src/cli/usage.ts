/** A command line that cannot be run as given: `main` prints it with the command's help and exits 2. */
export class UsageError extends Error {
  override readonly name = 'UsageError';
}
