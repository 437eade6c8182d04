import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { configSchema } from './app-config';

/** The README's configuration table must list exactly the variables the apps validate. */
describe('README configuration table', () => {
  const readme = readFileSync(join(__dirname, '../../../README.md'), 'utf8');
  const documented = new Map(
    [...readme.matchAll(/^\|\s*`([A-Z_]+)`\s*\|\s*([^|]+?)\s*\|/gm)].map((m) => [m[1], m[2]] as const),
  );

  it('documents every variable and nothing else', () => {
    expect([...documented.keys()].sort()).toEqual(Object.keys(configSchema.shape).sort());
  });

  it.each(Object.entries(configSchema.shape))('gives the real default of %s', (name, schema) => {
    const parsed = schema.safeParse(undefined);
    const value = parsed.success ? parsed.data : undefined;
    const cell = documented.get(name);
    if (value === undefined) expect(cell === '—' || cell === 'dev key').toBe(true);
    else expect(cell).toBe(`\`${String(value)}\``);
  });
});
