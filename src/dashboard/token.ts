// The dashboard's credentials, derived from the control token so that they stay valid across hot restarts
// (the exec keeps the token, not the process's memory) without anything crossing the hand-off:
//   - a login token `l1.EXPIRY.NONCE.MAC`, short-lived, printed by `nserve ctl dashboard` in a URL;
//   - a session `s1.EXPIRY.MAC`, the HttpOnly cookie the login URL sets.
// MAC = HMAC-SHA256(control token, "nserve-dashboard:" KIND ":" EXPIRY [":" NONCE]), base64url. Nobody
// without the control token can make one; the control token itself never reaches the browser.

// node:crypto through getBuiltinModule, not an ES import, which would load webcrypto too (answers.ts).
const nodeCrypto = (): typeof import('node:crypto') => process.getBuiltinModule('node:crypto');

/** How long a login URL works: long enough to paste it into a browser. */
export const LOGIN_TTL_MS = 2 * 60_000;
/** How long a session cookie works. */
export const SESSION_TTL_MS = 12 * 60 * 60_000;

function mac(controlToken: string, kind: 'login' | 'session', expiry: number, nonce = ''): string {
  return nodeCrypto()
    .createHmac('sha256', controlToken)
    .update(`nserve-dashboard:${kind}:${expiry}${nonce === '' ? '' : `:${nonce}`}`)
    .digest('base64url');
}

function sameMac(a: string, b: string): boolean {
  const x = Buffer.from(a);
  const y = Buffer.from(b);
  return x.length === y.length && nodeCrypto().timingSafeEqual(x, y);
}

export function makeLoginToken(controlToken: string, now: number, ttlMs = LOGIN_TTL_MS): string {
  const expiry = now + ttlMs;
  const nonce = nodeCrypto().randomBytes(9).toString('base64url');
  return `l1.${expiry}.${nonce}.${mac(controlToken, 'login', expiry, nonce)}`;
}

export function makeSession(controlToken: string, now: number): { value: string; maxAgeS: number } {
  const expiry = now + SESSION_TTL_MS;
  return { value: `s1.${expiry}.${mac(controlToken, 'session', expiry)}`, maxAgeS: SESSION_TTL_MS / 1000 };
}

export type TokenCheck =
  | { ok: true; expiry: number }
  | { ok: false; reason: 'malformed' | 'wrong' | 'expired' };

/** A login token: well-formed, made with this control token, not expired. */
export function checkLoginToken(controlToken: string, token: string, now: number): TokenCheck {
  const m = /^l1\.(\d{1,15})\.([A-Za-z0-9_-]{12})\.([A-Za-z0-9_-]{43})$/.exec(token);
  if (m === null) return { ok: false, reason: 'malformed' };
  const expiry = Number(m[1]);
  if (!sameMac(m[3]!, mac(controlToken, 'login', expiry, m[2]!))) return { ok: false, reason: 'wrong' };
  // A token valid for longer than any we make is not one of ours, whatever its MAC says.
  if (expiry <= now || expiry > now + LOGIN_TTL_MS * 5) return { ok: false, reason: 'expired' };
  return { ok: true, expiry };
}

export function checkSession(controlToken: string, value: string, now: number): TokenCheck {
  const m = /^s1\.(\d{1,15})\.([A-Za-z0-9_-]{43})$/.exec(value);
  if (m === null) return { ok: false, reason: 'malformed' };
  const expiry = Number(m[1]);
  if (!sameMac(m[2]!, mac(controlToken, 'session', expiry))) return { ok: false, reason: 'wrong' };
  if (expiry <= now || expiry > now + SESSION_TTL_MS) return { ok: false, reason: 'expired' };
  return { ok: true, expiry };
}

/**
 * Login tokens already used in this image, until they expire: a login URL works once. An exec forgets
 * them, so a URL used just before a hot restart works once more for what is left of its two minutes.
 */
export class UsedLogins {
  private readonly used = new Map<string, number>();

  /** True the first time `token` (already checked, expiring at `expiry`) is presented. */
  claim(token: string, expiry: number, now: number): boolean {
    for (const [t, e] of this.used) if (e <= now) this.used.delete(t);
    if (this.used.has(token)) return false;
    this.used.set(token, expiry);
    return true;
  }
}
