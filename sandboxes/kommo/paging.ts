// List answers: Kommo's paging (`page`, `limit`, `_page`, `_links`) and the `with` parameter.
import type { Request, Response } from 'express';
import { queryValues } from '../http.js';
import { badRequest } from './errors.js';
import type { FieldError, ValidationError } from './errors.js';

/** Page and limit of a list request: Kommo pages start at 1, `limit` defaults to 50 and may not exceed 250. */
function paging(req: Request): { page: number; limit: number } | ValidationError {
  const page = req.query.page === undefined ? 1 : Number(req.query.page);
  const limit = req.query.limit === undefined ? 50 : Number(req.query.limit);
  const errors: FieldError[] = [];
  if (!Number.isInteger(page) || page < 1) errors.push({ code: 'InvalidType', path: 'page', detail: 'This value should be a positive integer.' });
  if (!Number.isInteger(limit) || limit < 1 || limit > 250) errors.push({ code: 'NotSupportedChoice', path: 'limit', detail: 'The limit must be between 1 and 250.' });
  return errors.length > 0 ? { request_id: '0', errors } : { page, limit };
}

/** Answers one page of `items` under `_embedded[key]` with `_page` and `_links` (next only when more follow), or 204 past the end. */
export function sendPage(req: Request, res: Response, key: string, items: unknown[]): void {
  const paged = paging(req);
  if ('errors' in paged) return badRequest(res, [paged]);
  const slice = items.slice((paged.page - 1) * paged.limit, paged.page * paged.limit);
  if (slice.length === 0) return void res.status(204).end();
  const href = (page: number): string => {
    const url = new URL(req.originalUrl, `http://${req.get('host') ?? '127.0.0.1'}`);
    url.searchParams.set('page', String(page));
    url.searchParams.set('limit', String(paged.limit));
    return url.toString();
  };
  const more = paged.page * paged.limit < items.length;
  res.json({ _page: paged.page, _links: { self: { href: href(paged.page) }, ...(more ? { next: { href: href(paged.page + 1) } } : {}) }, _embedded: { [key]: slice } });
}

export const withValues = (req: Request): string[] => queryValues(req, 'with');
