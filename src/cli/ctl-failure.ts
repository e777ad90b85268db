// How a `nserve ctl` command fails: the exit statuses and the error that carries one. A leaf, so that the
// modules that throw it (ctl-shape.ts, ctl-wait.ts) and the one that catches it (ctl.ts) import it
// without importing each other.

export const EXIT_FAILED = 1;
export const EXIT_USAGE = 2;

/** A failure with the exit status it maps to. */
export class CtlFailure extends Error {
  constructor(
    message: string,
    readonly exitCode: number,
  ) {
    super(message);
  }
}
