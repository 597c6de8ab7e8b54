// The workflow bundle's entry point: every workflow the workers run is re-exported here.
export { callWorkflow } from './call.js';
export { leadWorkflow } from './lead.js';
export { retentionWorkflow } from './retention.js';
