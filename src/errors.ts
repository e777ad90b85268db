// Errors nserve raises itself. Every one carries a stable `code` (ERR_NSERVE_*) that docs and tests name;
// callers branch on `code`, never on message text.

export type NserveErrorCode =
  | 'ERR_NSERVE_USAGE'
  | 'ERR_NSERVE_INVALID_BIND'
  | 'ERR_NSERVE_INVALID_CONFIG'
  | 'ERR_NSERVE_CONFIG_FILE'
  | 'ERR_NSERVE_APP_MISSING'
  | 'ERR_NSERVE_APP_LOAD'
  | 'ERR_NSERVE_APP_EXPORT'
  | 'ERR_NSERVE_APP_EXIT'
  | 'ERR_NSERVE_ADDRESS_IN_USE'
  | 'ERR_NSERVE_ALREADY_RUNNING'
  | 'ERR_NSERVE_BIND'
  | 'ERR_NSERVE_BOOT_CHECK'
  | 'ERR_NSERVE_BOOT_TIMEOUT'
  | 'ERR_NSERVE_WORKER_BOOT'
  | 'ERR_NSERVE_HOOK_TIMEOUT'
  | 'ERR_NSERVE_EXEC'
  | 'ERR_NSERVE_INHERIT'
  | 'ERR_NSERVE_FD_LEAK'
  | 'ERR_NSERVE_RESTART_NO_FIT'
  | 'ERR_NSERVE_PROTOCOL'
  | 'ERR_NSERVE_TLS'
  | 'ERR_NSERVE_NO_ADDON'
  | 'ERR_NSERVE_READY_PROBE';

export class NserveError extends Error {
  readonly code: NserveErrorCode;
  /** Bad input from the user: the CLI prints the message on one line and exits 2 (or `exitCode`). */
  readonly usage: boolean;
  /** The CLI's exit status for a usage error, when not 2. */
  readonly exitCode: number | undefined;

  constructor(
    code: NserveErrorCode,
    message: string,
    options: { usage?: boolean; cause?: unknown; exitCode?: number } = {},
  ) {
    super(message, options.cause === undefined ? undefined : { cause: options.cause });
    this.name = 'NserveError';
    this.code = code;
    this.usage = options.usage ?? false;
    this.exitCode = options.exitCode;
  }
}

export function usageError(code: NserveErrorCode, message: string, cause?: unknown): NserveError {
  return new NserveError(code, message, { usage: true, cause });
}

/** The `code` of any error-like value (Node system errors, NserveError), if it has one. */
export function errorCode(err: unknown): string | undefined {
  if (typeof err === 'object' && err !== null && 'code' in err) {
    const code = (err as { code: unknown }).code;
    return typeof code === 'string' ? code : undefined;
  }
  return undefined;
}

export function errorMessage(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}
