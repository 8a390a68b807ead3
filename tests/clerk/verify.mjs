// Clerk's own session-token verifier (@clerk/backend verifyToken, pinned in package.json and
// package-lock.json), for tests/clerk_differential.rs. Reads
//   {"now_ms": <ms>, "runs": [{"options": <VerifyTokenOptions>, "tokens": ["..."]}]}
// on stdin and writes, per run, one {"ok": bool, "reason": string|null} per token on stdout
// (verifyToken throws its first error; older releases returned {errors}: both are read).
// The clock is pinned to now_ms, as the Rust side pins its own, so time rules compare exactly.
import { readFileSync } from 'node:fs';
import { verifyToken } from '@clerk/backend';

const input = JSON.parse(readFileSync(0, 'utf8'));
Date.now = () => input.now_ms;

const results = [];
for (const run of input.runs) {
  const out = [];
  for (const token of run.tokens) {
    try {
      const { errors } = await verifyToken(token, run.options);
      out.push(errors ? { ok: false, reason: String(errors[0]?.reason ?? errors[0]?.message ?? errors[0]) } : { ok: true, reason: null });
    } catch (e) {
      out.push({ ok: false, reason: String(e?.reason ?? e?.message ?? e) });
    }
  }
  results.push(out);
}
process.stdout.write(JSON.stringify(results));
