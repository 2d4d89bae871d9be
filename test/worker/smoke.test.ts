import { describe, expect, it } from 'vitest';
import { apiHits, post, tokenHits } from '../helpers';

describe('smoke', () => {
  it('forwards with a token', async () => {
    const res = await post('/t/basic', { hello: 'world' });
    expect(res.status, res.text).toBe(200);
    expect(res.json()).toMatchObject({ ok: true, body: { hello: 'world' } });
    expect(await tokenHits('basic')).toHaveLength(1);
    expect(await apiHits('basic')).toHaveLength(1);
  });
});
