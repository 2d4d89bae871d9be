/** Every line the Worker and its Durable Objects logged during the current test (filled by setup.ts). */
export const capturedLines: string[] = [];

/** The current test's log lines as one text. */
export function logged(): string {
  return capturedLines.join('\n');
}
