// Seeding over HTTP under /_sandbox/ (not part of Kommo's contract), for the demo stack and the CLI.
import express from 'express';
import type { Express, Request, Response } from 'express';
import { isRecord } from '../http.js';
import type { KommoTokens } from './oauth.js';
import type { KommoStore } from './store.js';
import { isInt } from './validation.js';

export function controlSeedRoutes(app: Express, store: KommoStore, tokens: KommoTokens): void {
  app.post('/_sandbox/contacts', express.json(), (req: Request, res: Response) => {
    const body: unknown = req.body;
    if (!isRecord(body) || typeof body.name !== 'string' || typeof body.phone !== 'string') {
      res.status(400).json({ error: 'expected {name, phone, company?, responsible_user_id?}' });
      return;
    }
    res.status(201).json(
      store.seedContact({
        name: body.name,
        phone: body.phone,
        ...(typeof body.email === 'string' ? { email: body.email } : {}),
        ...(typeof body.company === 'string' ? { company: body.company } : {}),
        ...(isInt(body.responsible_user_id) ? { responsibleUserId: body.responsible_user_id } : {}),
      }),
    );
  });
  app.post('/_sandbox/companies', express.json(), (req: Request, res: Response) => {
    const body: unknown = req.body;
    if (!isRecord(body) || typeof body.name !== 'string') {
      res.status(400).json({ error: 'expected {name, phone?}' });
      return;
    }
    res.status(201).json(store.seedCompany({ name: body.name, ...(typeof body.phone === 'string' ? { phone: body.phone } : {}) }));
  });
  app.post('/_sandbox/users', express.json(), (req: Request, res: Response) => {
    const body: unknown = req.body;
    if (!isRecord(body) || typeof body.name !== 'string' || typeof body.email !== 'string') {
      res.status(400).json({ error: 'expected {id?, name, email}' });
      return;
    }
    res.status(201).json(store.seedUser({ name: body.name, email: body.email, ...(isInt(body.id) ? { id: body.id } : {}) }));
  });
  app.post('/_sandbox/authorize', (_req: Request, res: Response) => {
    if (!tokens.oauth) return void res.status(400).json({ error: 'no oauth integration configured' });
    res.status(201).json({ code: tokens.authorize() });
  });
}
