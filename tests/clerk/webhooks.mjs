// The vendors' webhook code, for tests/svix_differential.rs: Clerk's own verifier
// (@clerk/backend/webhooks verifyWebhook, which reads the svix-* headers Clerk sends) and the
// Standard Webhooks library Svix publishes (standardwebhooks: the signer, and the verifier of the
// unbranded webhook-* headers), both pinned in package.json and package-lock.json. Reads
//   {"now_ms": <ms>, "secret": "whsec_...",
//    "sign": [{"id", "timestamp": <s>, "body"}], "verify": [{"headers": {...}, "body"}]}
// on stdin and writes {"signatures": ["v1,..."], "verdicts": [{"ok": bool, "reason": string|null}]}.
// The clock is pinned to now_ms, as the Rust side pins its own.
import { readFileSync } from 'node:fs';
import { verifyWebhook } from '@clerk/backend/webhooks';
import { Webhook } from 'standardwebhooks';

const input = JSON.parse(readFileSync(0, 'utf8'));
Date.now = () => input.now_ms;
const wh = new Webhook(input.secret);

const signatures = input.sign.map((c) => wh.sign(c.id, new Date(c.timestamp * 1000), c.body));

const verdicts = [];
for (const c of input.verify) {
  const lower = Object.fromEntries(Object.entries(c.headers).map(([k, v]) => [k.toLowerCase(), v]));
  try {
    if ('svix-id' in lower || 'svix-timestamp' in lower || 'svix-signature' in lower) {
      const request = new Request('https://api.example.test/api/v1/clerk/webhook', {
        method: 'POST',
        headers: c.headers,
        body: c.body,
      });
      await verifyWebhook(request, { signingSecret: input.secret });
    } else {
      wh.verify(c.body, c.headers);
    }
    verdicts.push({ ok: true, reason: null });
  } catch (e) {
    verdicts.push({ ok: false, reason: String(e?.message ?? e) });
  }
}
process.stdout.write(JSON.stringify({ signatures, verdicts }));
