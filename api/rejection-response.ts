import type { Response } from 'express';
import type { Rejection } from '../ingestion/rejections.js';

/** A refusal as every route answers it: its status, and `{error, message, details?}`. */
export function sendRejection(res: Response, rejection: Rejection): void {
  res.status(rejection.status).json({ error: rejection.reason, message: rejection.message, ...(rejection.details !== undefined ? { details: rejection.details } : {}) });
}
