// Tasks: a batch create and a list filtered by the entity they are set on.
import type { Express } from 'express';
import { queryValues } from '../http.js';
import { apiJson } from './errors.js';
import type { KommoStore } from './store.js';
import type { KommoTask } from './types.js';
import { parseBatch } from './validation.js';
import type { Checker } from './validation.js';

function parseTask(item: Record<string, unknown>, requestId: string, check: Checker) {
  const task = {
    requestId,
    text: check.string('text', true),
    completeTill: check.int('complete_till', true, 0),
    entityId: check.int('entity_id', false, 1) ?? null,
    entityType: check.choice('entity_type', ['contacts', 'leads'] as const, false) ?? null,
    taskTypeId: check.int('task_type_id', false, 1) ?? 1,
    responsibleUserId: check.int('responsible_user_id', false) ?? null,
  };
  if (task.entityId !== null && task.entityType === null && item.entity_type === undefined) {
    check.errors.push({ code: 'FieldMissing', path: 'entity_type', detail: 'entity_type is required with entity_id.' });
  }
  if (task.entityType !== null && task.entityId === null && item.entity_id === undefined) {
    check.errors.push({ code: 'FieldMissing', path: 'entity_id', detail: 'entity_id is required with entity_type.' });
  }
  return task;
}

export function taskRoutes(app: Express, store: KommoStore): void {
  app.post('/api/v4/tasks', apiJson(), (req, res) => {
    const parsed = parseBatch(req, res, 'A task', (item, requestId, check) => {
      const task = parseTask(item, requestId, check);
      return task;
    });
    if (!parsed) return;

    const created = parsed.map((task) => {
      if (!task || task.text === undefined || task.completeTill === undefined) throw new Error('unreachable: validated');
      const stored: KommoTask = {
        id: ++store.seq.task,
        text: task.text,
        complete_till: task.completeTill,
        entity_id: task.entityId,
        entity_type: task.entityType,
        task_type_id: task.taskTypeId,
        responsible_user_id: task.responsibleUserId,
        is_completed: false,
        created_at: store.nowSeconds(),
        request_id: task.requestId,
      };
      store.tasks.push(stored);
      return { id: stored.id, request_id: stored.request_id };
    });
    res.json({ _embedded: { tasks: created } });
  });

  app.get('/api/v4/tasks', (req, res) => {
    const ids = queryValues(req, 'filter[entity_id]').map(Number);
    const types = queryValues(req, 'filter[entity_type]');
    const found = store.tasks
      .filter((task) => ids.length === 0 || (task.entity_id !== null && ids.includes(task.entity_id)))
      .filter((task) => types.length === 0 || (task.entity_type !== null && types.includes(task.entity_type)));
    if (found.length === 0) return void res.status(204).end();
    res.json({ _embedded: { tasks: found } });
  });
}
