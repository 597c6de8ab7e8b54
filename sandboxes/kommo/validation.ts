// Request checks shared by the batch endpoints: field types, batch shape, request ids, path ids.
import type { Request, Response } from 'express';
import { isRecord } from '../http.js';
import { badRequest } from './errors.js';
import type { FieldError, ValidationError } from './errors.js';

export const isInt = (value: unknown): value is number => typeof value === 'number' && Number.isInteger(value);

/** Collects field errors for one entity of a batch. */
export class Checker {
  readonly errors: FieldError[] = [];

  constructor(private readonly body: Record<string, unknown>, private readonly prefix = '') {}

  private fail(code: FieldError['code'], field: string, detail: string): undefined {
    this.errors.push({ code, path: `${this.prefix}${field}`, detail });
    return undefined;
  }

  string(field: string, required: boolean): string | undefined {
    const value = this.body[field];
    if (value === undefined || value === null || value === '') {
      return required ? this.fail('FieldMissing', field, 'This field is missing.') : undefined;
    }
    return typeof value === 'string' ? value : this.fail('InvalidType', field, 'This value should be of type string.');
  }

  int(field: string, required: boolean, min?: number, max?: number): number | undefined {
    const value = this.body[field];
    if (value === undefined || value === null) return required ? this.fail('FieldMissing', field, 'This field is missing.') : undefined;
    if (!isInt(value)) return this.fail('InvalidType', field, 'This value should be of type int.');
    if ((min !== undefined && value < min) || (max !== undefined && value > max)) {
      return this.fail('NotSupportedChoice', field, `The value you selected is not a valid choice (${min ?? '-∞'}..${max ?? '∞'}).`);
    }
    return value;
  }

  choice<T extends string>(field: string, choices: readonly T[], required: boolean): T | undefined {
    const value = this.string(field, required);
    if (value === undefined) return undefined;
    return (choices as readonly string[]).includes(value)
      ? (value as T)
      : this.fail('NotSupportedChoice', field, `The value you selected is not a valid choice (${choices.join(', ')}).`);
  }

  bool(field: string, required: boolean): boolean | undefined {
    const value = this.body[field];
    if (value === undefined || value === null) return required ? this.fail('FieldMissing', field, 'This field is missing.') : undefined;
    return typeof value === 'boolean' ? value : this.fail('InvalidType', field, 'This value should be of type bool.');
  }

  object(field: string): Record<string, unknown> | undefined {
    const value = this.body[field];
    if (value === undefined || value === null) return this.fail('FieldMissing', field, 'This field is missing.');
    return isRecord(value) ? value : this.fail('InvalidType', field, 'This value should be of type object.');
  }
}

/** The batch endpoints take a non-empty JSON array; anything else is one validation error. */
export function batchOf(req: Request, res: Response): unknown[] | undefined {
  const body: unknown = req.body;
  if (Array.isArray(body) && body.length > 0) return body as unknown[];
  badRequest(res, [
    { request_id: '0', errors: [{ code: 'InvalidType', path: '', detail: 'The request body should be a non-empty array.' }] },
  ]);
  return undefined;
}

/**
 * A batch endpoint's items, each read by `parse` with its request id and a Checker; or, when any
 * item is not an object or has field errors, the 400 naming every one (Kommo refuses the batch whole).
 */
export function parseBatch<T>(req: Request, res: Response, noun: string, parse: (item: Record<string, unknown>, requestId: string, check: Checker) => T): T[] | undefined {
  const batch = batchOf(req, res);
  if (!batch) return undefined;
  const invalid: ValidationError[] = [];
  const parsed = batch.map((item, index) => {
    const requestId = requestIdOf(item, index);
    if (!isRecord(item)) {
      invalid.push({ request_id: requestId, errors: [{ code: 'InvalidType', path: '', detail: `${noun} should be an object.` }] });
      return undefined;
    }
    const check = new Checker(item);
    const value = parse(item, requestId, check);
    if (check.errors.length > 0) invalid.push({ request_id: requestId, errors: check.errors });
    return value;
  });
  if (invalid.length > 0) {
    badRequest(res, invalid);
    return undefined;
  }
  return parsed.filter((value): value is T => value !== undefined);
}

export function requestIdOf(item: unknown, index: number): string {
  return isRecord(item) && typeof item.request_id === 'string' && item.request_id !== '' ? item.request_id : String(index);
}

/** The numeric `:id` of the path, if it is one. */
export function idParam(req: Request): number | undefined {
  const raw = req.params.id;
  return typeof raw === 'string' && /^\d+$/.test(raw) ? Number(raw) : undefined;
}
