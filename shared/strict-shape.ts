/**
 * A small strict shape checker for input that reaches a workflow without passing our API (the
 * Temporal CLI, the Web UI): every field must be known, the required ones present, each of its
 * type. Hand-written rather than zod, which must stay out of the workflow bundle (see vocabulary.ts).
 * Each problem names the field it is about, so the message tells the sender what to fix.
 */

export interface ShapeProblem {
  /** The field, from the input's top: `['meeting', 'startsAt']`; empty for the input itself. */
  path: string[];
  message: string;
}

/** What is wrong with a field's value: nothing, or problems whose paths are relative to the field. */
export type FieldCheck = (value: unknown) => ShapeProblem[];

export interface FieldRule {
  check: FieldCheck;
  optional: boolean;
}

export type Shape = Readonly<Record<string, FieldRule>>;

export const required = (check: FieldCheck): FieldRule => ({ check, optional: false });
export const optional = (check: FieldCheck): FieldRule => ({ check, optional: true });

const problem = (message: string): ShapeProblem[] => [{ path: [], message }];

/** How a value is named in a message: its JSON type, or the string itself when it is short. */
export function describeValue(value: unknown): string {
  if (value === null) return 'null';
  if (Array.isArray(value)) return 'an array';
  if (typeof value === 'string') return value.length <= 40 ? JSON.stringify(value) : `a string of ${value.length} characters`;
  if (typeof value === 'number' || typeof value === 'boolean') return `${typeof value} ${value}`;
  return typeof value === 'object' ? 'an object' : typeof value;
}

const isPlainObject = (value: unknown): value is Record<string, unknown> => typeof value === 'object' && value !== null && !Array.isArray(value);

/** A string of `min` to `max` characters, passing `test` if given (which says what is wrong). */
export function text(options: { min?: number; max: number; test?: (value: string) => string | undefined }): FieldCheck {
  const min = options.min ?? 0;
  const expected = min > 0 ? `a string of ${min} to ${options.max} characters` : `a string of at most ${options.max} characters`;
  return (value) => {
    if (typeof value !== 'string' || value.length < min || value.length > options.max) return problem(`must be ${expected}, got ${describeValue(value)}`);
    const wrong = options.test?.(value);
    return wrong ? problem(wrong) : [];
  };
}

/** One of a fixed list of strings. */
export function oneOf(values: readonly string[]): FieldCheck {
  return (value) => (typeof value === 'string' && values.includes(value) ? [] : problem(`must be one of ${values.join(', ')}; got ${describeValue(value)}`));
}

/** A nested object of this shape. */
export function object(shape: Shape): FieldCheck {
  return (value) => shapeProblems(value, shape);
}

/**
 * Everything wrong with `value` against `shape`: not an object, fields the shape does not know,
 * required fields missing, fields of the wrong type. An absent optional field is fine; `null` is a
 * value like any other (and of no field's type).
 */
export function shapeProblems(value: unknown, shape: Shape): ShapeProblem[] {
  if (!isPlainObject(value)) return problem(`must be a JSON object, got ${describeValue(value)}`);
  const known = Object.keys(shape);
  const problems: ShapeProblem[] = [];
  for (const key of Object.keys(value)) {
    if (!Object.hasOwn(shape, key)) problems.push({ path: [key], message: `unknown field; allowed: ${known.join(', ') || 'none'}` });
  }
  for (const [key, rule] of Object.entries(shape)) {
    if (!Object.hasOwn(value, key) || value[key] === undefined) {
      if (!rule.optional) problems.push({ path: [key], message: 'required' });
      continue;
    }
    for (const found of rule.check(value[key])) problems.push({ path: [key, ...found.path], message: found.message });
  }
  return problems;
}

/** The problems as one line: `meeting.startsAt: required; bogus: unknown field; …`. */
export function formatProblems(problems: readonly ShapeProblem[]): string {
  return problems.map((found) => (found.path.length > 0 ? `${found.path.join('.')}: ${found.message}` : found.message)).join('; ');
}
