/**
 * Follow-up e-mail over SMTP (nodemailer). The Message-ID is derived from our effect key. A send
 * stops (its connection is closed) when the enclosing work is cancelled (`withCancellation`), and
 * a server that stalls is given up on within a minute rather than nodemailer's ten.
 */
import nodemailer from 'nodemailer';
import type { Transporter } from 'nodemailer';
import type { EmailConfig } from '../config/schema.js';
import { currentCancellation, OutsideSystemError } from './http.js';

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
  const transport: Transporter = nodemailer.createTransport(
    { url: config.smtpUrl, connectionTimeout: 10_000, greetingTimeout: 10_000, socketTimeout: 60_000 },
    { from: config.from },
  );
  return {
    async send(email) {
      const signal = currentCancellation();
      try {
        const info = (await transport.sendMail({
          from: config.from,
          to: email.to,
          ...(email.cc ? { cc: email.cc } : {}),
          subject: email.subject,
          text: email.text,
          messageId: email.messageId,
          ...(signal ? { signal } : {}),
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
