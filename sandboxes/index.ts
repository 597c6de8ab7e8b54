// Local stand-ins for the outside systems (see CONTRACTS.md).
export { startKommoSandbox, phoneKey } from './kommo.js';
export type {
  KommoCompany,
  KommoContact,
  KommoLead,
  KommoNote,
  KommoSandbox,
  KommoSandboxOptions,
  KommoState,
  KommoStoredNote,
  KommoTask,
  KommoUnsorted,
  KommoUser,
  SeedCompanyInput,
  SeedContactInput,
  SeedUserInput,
} from './kommo.js';
export { HUBSPOT_CALL_DISPOSITIONS, startHubspotSandbox } from './hubspot.js';
export type {
  HubspotAssociation,
  HubspotObjectType,
  HubspotOwner,
  HubspotSandbox,
  HubspotSandboxOptions,
  HubspotSeedContactInput,
  HubspotState,
  HubspotStoredObject,
} from './hubspot.js';
export { startTicketingSandbox, TICKET_PRIORITIES } from './ticketing.js';
export type { Ticket, TicketPriority, TicketingSandbox, TicketingSandboxOptions, TicketingState } from './ticketing.js';
export { startSlackSandbox } from './slack.js';
export type { SlackMessage, SlackSandbox, SlackSandboxOptions, SlackState } from './slack.js';
export { startSmtpSandbox } from './smtp.js';
export type { SmtpMessage, SmtpSandbox, SmtpSandboxOptions, SmtpState } from './smtp.js';
export { deterministicWav, startRecordingHost } from './recordings.js';
export type { RecordingHost, RecordingHostOptions, RecordingHostState, RecordingInfo } from './recordings.js';
export type { Clock, RequestCounts } from './http.js';
export { GRAPH_VERSION, startWhatsAppSandbox, templateParameterCount } from './whatsapp.js';
export type {
  WhatsAppClock,
  WhatsAppDelivery,
  WhatsAppDeliveryStatus,
  WhatsAppInboundInput,
  WhatsAppInboundMessage,
  WhatsAppSandbox,
  WhatsAppSandboxOptions,
  WhatsAppState,
  WhatsAppStatus,
  WhatsAppStatusError,
  WhatsAppStatusName,
  WhatsAppStoredMessage,
  WhatsAppTemplateCategory,
  WhatsAppTemplateInput,
  WhatsAppWebhookPayload,
  WhatsAppWebhookValue,
} from './whatsapp.js';
export { isTwilioOptOutKeyword, startTwilioMessagingSandbox, TWILIO_API_VERSION, TWILIO_OPT_IN_KEYWORDS, TWILIO_OPT_OUT_KEYWORDS } from './twilio-messaging.js';
export type {
  TwilioCallback,
  TwilioDeliveryOutcome,
  TwilioMessageStatus,
  TwilioMessagingSandbox,
  TwilioMessagingSandboxOptions,
  TwilioMessagingState,
  TwilioStoredMessage,
} from './twilio-messaging.js';
