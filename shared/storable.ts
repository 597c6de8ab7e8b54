/**
 * What PostgreSQL can store: text and jsonb hold no U+0000. A value with one anywhere would fail its
 * commit, and then every journal write of its workflow, so it is refused where it comes in.
 */
export function hasNul(value: unknown): boolean {
  if (typeof value === 'string') return value.includes('\u0000');
  if (Array.isArray(value)) return value.some(hasNul);
  if (typeof value === 'object' && value !== null) return Object.entries(value).some(([key, item]) => key.includes('\u0000') || hasNul(item));
  return false;
}
