// Kommo's error bodies: problem+json, with validation errors per entity of a batch.
import type { RequestHandler, Response } from 'express';
import { jsonBody } from '../http.js';

export interface FieldError {
  code: 'FieldMissing' | 'InvalidType' | 'NotSupportedChoice' | 'Duplicate';
  path: string;
  detail: string;
}

export interface ValidationError {
  request_id: string;
  errors: FieldError[];
}

export function problem(res: Response, status: number, title: string, extra: Record<string, unknown> = {}): void {
  res.status(status).type('application/problem+json').send(JSON.stringify({ title, status, ...extra }));
}

export function badRequest(res: Response, errors: ValidationError[]): void {
  problem(res, 400, 'Bad Request', { 'validation-errors': errors });
}

export const notFound = (res: Response): void => problem(res, 404, 'Not Found');

/** The OAuth server's error body (as seen from Kommo: a problem+json with a `hint`). */
export function oauthProblem(res: Response, status: number, title: string, detail: string, hint?: string): void {
  problem(res, status, title, { type: 'https://developers.amocrm.ru/v3/errors/OAuthProblemJson', detail, ...(hint ? { hint } : {}) });
}

/** The API's JSON body parser: too large → 413, malformed → 400, in Kommo's error format. */
export const apiJson = (): RequestHandler =>
  jsonBody((res, status) => (status === 413 ? problem(res, 413, 'Payload Too Large') : problem(res, 400, 'Bad Request', { detail: 'Malformed JSON body' })));
