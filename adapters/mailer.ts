/** Follow-up e-mail over SMTP (nodemailer). The Message-ID is derived from our effect key. */
import nodemailer from 'nodemailer';
import type { Transporter } from 'nodemailer';
import type { EmailConfig } from '../config/schema.js';
import { OutsideSystemError } from './http.js';

export interface OutgoingEmail {
  messageId: string;
  to: string;
  cc?: string;
  subject: string;
  text: string;
}

export interface Mailer {
  send(email: OutgoingEmail): Promise<{ messageId: string }>;
  close(): void;
}

export function createMailer(config: EmailConfig): Mailer {
  const transport: Transporter = nodemailer.createTransport(config.smtpUrl, { from: config.from });
  return {
    async send(email) {
      try {
        const info = (await transport.sendMail({
          from: config.from,
          to: email.to,
          ...(email.cc ? { cc: email.cc } : {}),
          subject: email.subject,
          text: email.text,
          messageId: email.messageId,
        })) as { messageId: string };
        return { messageId: info.messageId };
      } catch (error) {
        const code = (error as { responseCode?: number; code?: string }).responseCode;
        // 5xx SMTP replies are permanent (bad address, policy); anything else may pass later.
        const kind = code !== undefined && code >= 500 ? 'rejected' : 'unavailable';
        throw new OutsideSystemError('SMTP', kind, `${(error as Error).message.split('\n')[0]}`, code);
      }
    },
    close: () => transport.close(),
  };
}
