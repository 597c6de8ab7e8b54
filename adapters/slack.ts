/** Slack incoming webhooks: POST JSON, answer "ok". */
import { requestJson } from './http.js';

export interface SlackMessage {
  text: string;
  blocks?: unknown[];
}

export async function postToSlack(webhookUrl: string, message: SlackMessage): Promise<void> {
  await requestJson({ system: 'Slack', method: 'POST', url: webhookUrl, json: message });
}
