/** Operator tokens: made here, shown once, stored only as a SHA-256 (db/operators.ts). */
import { createHash, randomBytes } from 'node:crypto';

/** A random 256-bit secret needs no slow password hash: SHA-256 cannot be searched backwards. */
export const operatorTokenHash = (token: string): Buffer => createHash('sha256').update(token, 'utf8').digest();

/** `sbo_` + 256 random bits; the prefix lets secret scanners spot a leaked one. */
export function newOperatorToken(): string {
  return `sbo_${randomBytes(32).toString('base64url')}`;
}

/** A dashboard session id: 256 random bits, base64url (43 characters). */
export function newSessionId(): string {
  return randomBytes(32).toString('base64url');
}
export const sessionIdPattern = /^[A-Za-z0-9_-]{43}$/;
