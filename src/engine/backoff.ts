/**
 * Exponential backoff with "full jitter": a random delay in [base*2^(n-1)/2, base*2^(n-1)],
 * capped. Half the window is kept fixed so a retry is never immediate.
 */
export function backoffDelay(failedAttempt: number, baseMs: number, capMs: number, random: () => number = Math.random): number {
  const exp = Math.min(capMs, baseMs * 2 ** Math.max(0, failedAttempt - 1));
  return Math.round(exp / 2 + random() * (exp / 2));
}
