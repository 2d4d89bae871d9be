import { expect, it } from 'vitest';
it('node project runs', () => expect(process.version.startsWith('v2')).toBe(true));
