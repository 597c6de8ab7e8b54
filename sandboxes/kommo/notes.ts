// Notes added straight to an entity (how a call is noted on an entity its phone does not match).
import type { Express } from 'express';
import { isRecord } from '../http.js';
import { apiJson, notFound } from './errors.js';
import type { KommoStore } from './store.js';
import { isInt, parseBatch } from './validation.js';

type EntityType = 'contacts' | 'leads' | 'companies';

function entityExists(store: KommoStore, entityType: EntityType, id: number | undefined): boolean {
  if (entityType === 'contacts') return store.contacts.some((c) => c.id === id);
  if (entityType === 'leads') return store.leads.some((l) => l.id === id);
  return store.companies.some((c) => c.id === id);
}

export function noteRoutes(app: Express, store: KommoStore): void {
  app.post('/api/v4/:entityType/notes', apiJson(), (req, res) => {
    const entityType = req.params.entityType;
    if (entityType !== 'contacts' && entityType !== 'leads' && entityType !== 'companies') return notFound(res);
    const parsed = parseBatch(req, res, 'A note', (item, requestId, check) => {
      const note = {
        requestId,
        entityId: check.int('entity_id', true, 1),
        noteType: check.choice('note_type', ['call_in', 'call_out', 'common'] as const, true),
        params: isRecord(item.params) ? item.params : {},
      };
      if (note.entityId !== undefined && !entityExists(store, entityType, note.entityId)) {
        check.errors.push({ code: 'InvalidType', path: 'entity_id', detail: 'Entity not found.' });
      }
      return note;
    });
    if (!parsed) return;
    const created = parsed.flatMap((note) => {
      if (!note || note.entityId === undefined || note.noteType === undefined) return [];
      const params = note.params;
      const text = (key: string): string | null => (typeof params[key] === 'string' ? params[key] : null);
      const int = (key: string): number | null => (isInt(params[key]) ? params[key] : null);
      const stored = store.addNote({
        entity_id: note.entityId,
        entity_type: entityType,
        note_type: note.noteType === 'common' ? 'call_in' : note.noteType,
        created_at: store.nowSeconds(),
        responsible_user_id: null,
        created_by: null,
        params: {
          uniq: text('uniq'),
          duration: int('duration') ?? 0,
          source: text('source') ?? '',
          link: text('link'),
          phone: text('phone') ?? '',
          call_result: text('call_result'),
          call_status: int('call_status'),
        },
      });
      return [{ id: stored.id, entity_id: stored.entity_id, request_id: note.requestId }];
    });
    res.json({ _embedded: { notes: created } });
  });
}
