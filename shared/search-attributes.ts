import { SearchAttributeType, defineSearchAttributeKey } from '@temporalio/common';

/**
 * Custom search attributes, typed for workflows and clients. temporal-dev.yaml registers the same
 * names on the dev server (a unit test keeps the two in step). They hold ids and states only:
 * the payload codec never encrypts search attributes, so no phone numbers or names.
 */
export const searchAttributes = {
  tenant: defineSearchAttributeKey('Tenant', SearchAttributeType.KEYWORD),
  callStatus: defineSearchAttributeKey('CallStatus', SearchAttributeType.KEYWORD),
  callDirection: defineSearchAttributeKey('CallDirection', SearchAttributeType.KEYWORD),
  callProvider: defineSearchAttributeKey('CallProvider', SearchAttributeType.KEYWORD),
  enrichmentState: defineSearchAttributeKey('EnrichmentState', SearchAttributeType.KEYWORD),
  crmSyncState: defineSearchAttributeKey('CrmSyncState', SearchAttributeType.KEYWORD),
  leadStage: defineSearchAttributeKey('LeadStage', SearchAttributeType.KEYWORD),
  nextActionAt: defineSearchAttributeKey('NextActionAt', SearchAttributeType.DATETIME),
} as const;
