// Parsing and validating one setting: where it came from (flag, config file, environment) and its value.

import { usageError } from '../errors.js';
import { type CliOptions, HOOK_NAMES, type HookFn, type HookName, type UserConfig } from './types.js';

/** Where a setting came from: its default, the config file, a command-line flag, or the environment. */
export type Source = 'default' | 'file' | 'flag' | 'env';
export type Picked = { value: unknown; source: Source } | undefined;

/**
 * Settings the environment may give, as PaaS conventions have it: PORT (a bind on 0.0.0.0) and
 * WEB_CONCURRENCY (workers). nserve itself sets PORT for the app once it has bound (NSERVE_PORTS tells
 * so); a PORT it set is not read back as the user's.
 */
export const SETTING_ENV = { port: 'PORT', workers: 'WEB_CONCURRENCY' } as const;

export function fromEnv(key: string, env: NodeJS.ProcessEnv): Picked {
  if (!(key in SETTING_ENV)) return undefined;
  const value = env[SETTING_ENV[key as keyof typeof SETTING_ENV]];
  if (value === undefined || (key === 'port' && env.NSERVE_PORTS !== undefined)) return undefined;
  return { value, source: 'env' };
}

/** How the user named a setting: `--slots`, `config key slots` or `environment WEB_CONCURRENCY`. */
export function settingName(key: string, source: Source): string {
  return source === 'flag'
    ? `--${key.replace(/[A-Z]/g, (c) => `-${c.toLowerCase()}`)}`
    : source === 'env'
      ? `environment ${SETTING_ENV[key as keyof typeof SETTING_ENV]}`
      : `config key ${key}`;
}

export function invalid(key: string, value: unknown, source: Source, valid: string): Error {
  return usageError(
    'ERR_NSERVE_INVALID_CONFIG',
    `invalid ${settingName(key, source)}: ${JSON.stringify(value)}: expected ${valid}`,
  );
}

export function pick<K extends keyof CliOptions & keyof UserConfig>(
  key: K,
  cli: CliOptions,
  file: UserConfig,
): { value: unknown; source: Source } | undefined {
  if (cli[key] !== undefined) return { value: cli[key], source: 'flag' };
  if (file[key] !== undefined) return { value: file[key], source: 'file' };
  return undefined;
}

export function integer(
  key: string,
  v: { value: unknown; source: Source } | undefined,
  min: number,
  max: number,
  dflt: number,
): number {
  if (v === undefined) return dflt;
  const n = typeof v.value === 'string' && /^-?\d+$/.test(v.value.trim()) ? Number(v.value) : v.value;
  if (typeof n !== 'number' || !Number.isInteger(n) || n < min || n > max) {
    throw invalid(key, v.value, v.source, `an integer from ${min} to ${max}`);
  }
  return n;
}

/**
 * The least a timeout may be, when 0 (or less than this) cannot work, and why (for the message). Keys without
 * one take 0, which each of them reads as "none" or "at once" (docs/operating.md#timeouts-what-0-means).
 */
export interface SecondsFloor {
  /** Seconds; `exclusive`: the value must be above it (0 excluded, any fraction above allowed). */
  min: number;
  exclusive?: boolean;
  why: string;
}

export function seconds(
  key: string,
  v: { value: unknown; source: Source } | undefined,
  dfltSeconds: number,
  floor?: SecondsFloor,
): number {
  if (v === undefined) return dfltSeconds * 1000;
  const n = typeof v.value === 'string' && /^\d+(\.\d+)?$/.test(v.value.trim()) ? Number(v.value) : v.value;
  const min = floor?.min ?? 0;
  const low = typeof n === 'number' && (floor?.exclusive === true ? n <= min : n < min);
  if (typeof n !== 'number' || !Number.isFinite(n) || low || n > 86400) {
    const range =
      floor === undefined
        ? 'a number of seconds from 0 to 86400'
        : floor.exclusive === true
          ? `a number of seconds above ${min}, up to 86400 (${floor.why})`
          : `a number of seconds from ${min} to 86400 (${floor.why})`;
    throw invalid(key, v.value, v.source, range);
  }
  return Math.round(n * 1000);
}

const DURATION_UNITS: Record<string, number> = { ms: 1, s: 1000, m: 60_000 };

/**
 * A duration: a number of seconds (as every other timeout), or a string with a unit: '500ms', '3s',
 * '1.5s', '2m'. From 0 to 24 hours; returns milliseconds, undefined when not set.
 */
export function duration(key: string, v: Picked): number | undefined {
  if (v === undefined) return undefined;
  let ms: number | undefined;
  if (typeof v.value === 'number') ms = v.value * 1000;
  else if (typeof v.value === 'string') {
    const m = /^\s*(\d+(?:\.\d+)?)\s*(ms|s|m)?\s*$/.exec(v.value);
    if (m !== null) ms = Number(m[1]) * DURATION_UNITS[m[2] ?? 's']!;
  }
  if (ms === undefined || !Number.isFinite(ms) || ms <= 0 || ms > 86_400_000)
    throw invalid(
      key,
      v.value,
      v.source,
      'a duration such as 500ms, 3s or 2m (or a number of seconds), up to 24 hours',
    );
  return Math.round(ms);
}

const SIZE_UNITS: Record<string, number> = {
  '': 1,
  b: 1,
  k: 1024,
  kb: 1024,
  m: 1024 ** 2,
  mb: 1024 ** 2,
  g: 1024 ** 3,
  gb: 1024 ** 3,
};

/** A memory size: bytes as a number, or '512MB', '1.5G', '800k' (powers of 1024). At least 16 MB. */
export function byteSize(key: string, v: { value: unknown; source: Source } | undefined): number | undefined {
  if (v === undefined) return undefined;
  const valid = 'a size such as 512MB, 1.5GB or a number of bytes (at least 16MB)';
  let bytes: number | undefined;
  if (typeof v.value === 'number') bytes = v.value;
  else if (typeof v.value === 'string') {
    const m = /^\s*(\d+(?:\.\d+)?)\s*([a-zA-Z]*)\s*$/.exec(v.value);
    const unit = m?.[2]?.toLowerCase();
    if (m !== null && unit !== undefined && SIZE_UNITS[unit] !== undefined)
      bytes = Number(m[1]) * SIZE_UNITS[unit]!;
  }
  if (bytes === undefined || !Number.isFinite(bytes) || bytes < 16 * 1024 ** 2)
    throw invalid(key, v.value, v.source, valid);
  return Math.round(bytes);
}

export function str(key: string, v: { value: unknown; source: Source } | undefined): string | undefined {
  if (v === undefined) return undefined;
  if (typeof v.value !== 'string' || v.value === '')
    throw invalid(key, v.value, v.source, 'a non-empty string');
  return v.value;
}

export function hooks(file: UserConfig): Record<HookName, HookFn[]> {
  const out = {} as Record<HookName, HookFn[]>;
  for (const name of HOOK_NAMES) {
    const v = file[name];
    const list = v === undefined ? [] : Array.isArray(v) ? v : [v];
    for (const fn of list) {
      if (typeof fn !== 'function')
        throw invalid(name, typeof fn, 'file', 'a function or an array of functions');
    }
    out[name] = list;
  }
  return out;
}

/** `--dotenv FILE` or config key envFile (the flag cannot be --env-file: Node 20 claims that one). */
export function envFile(
  cli: CliOptions,
  file: UserConfig,
  sources: Record<string, Source>,
): string | undefined {
  const v: Picked =
    cli.dotenv !== undefined
      ? { value: cli.dotenv, source: 'flag' }
      : file.envFile !== undefined
        ? { value: file.envFile, source: 'file' }
        : undefined;
  sources.envFile = v?.source ?? 'default';
  if (v === undefined) return undefined;
  if (typeof v.value !== 'string' || v.value === '')
    throw invalid(v.source === 'flag' ? 'dotenv' : 'envFile', v.value, v.source, 'a file path');
  return v.value;
}

export function bool(key: string, v: Picked): boolean {
  if (v === undefined) return false;
  if (typeof v.value !== 'boolean') throw invalid(key, v.value, v.source, 'true or false');
  return v.value;
}

/** A request path (with a query, if any) for the ready probe. */
export function urlPath(key: string, v: Picked): string | undefined {
  if (v === undefined) return undefined;
  if (typeof v.value !== 'string' || !/^\/[^\s#]*$/.test(v.value)) {
    throw invalid(key, v.value, v.source, 'a URL path starting with /, like /ready');
  }
  return v.value;
}

export function healthPath(v: Picked): string | undefined {
  if (v === undefined) return undefined;
  if (typeof v.value !== 'string' || !/^\/[^\s?#]*$/.test(v.value)) {
    throw invalid('healthPath', v.value, v.source, 'a URL path starting with /, like /healthz');
  }
  return v.value;
}
