/**
 * Failure messages and stack traces go into an encoded payload (so the payload codec encrypts
 * them) instead of plain text in the history: an error may quote a phone number or a message.
 * The SDK loads this file by path, with require(), in clients, workers and inside the workflow
 * bundle; plain CommonJS so that works without a TypeScript loader.
 */
'use strict';
/* global require, exports */
// eslint-disable-next-line @typescript-eslint/no-require-imports -- CommonJS on purpose (see above)
const { DefaultFailureConverter } = require('@temporalio/common');

exports.failureConverter = new DefaultFailureConverter({ encodeCommonAttributes: true });
