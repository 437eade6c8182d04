import { spawnSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { delimiter, join } from 'node:path';
import { TestStack } from './support/test-apps';

const ROOT = join(__dirname, '..');

/** The fenced blocks of the README's worked example subsection, in order, with their language. */
function workedExampleBlocks(): { lang: string; body: string }[] {
  const readme = readFileSync(join(ROOT, 'README.md'), 'utf8');
  const start = readme.indexOf('### Worked example: an Epic lab result becomes LOINC with UCUM units');
  const end = readme.indexOf('\n### ', start + 4);
  expect(start).toBeGreaterThan(0);
  expect(end).toBeGreaterThan(start);
  return [...readme.slice(start, end).matchAll(/^```(\w+)\n([\s\S]*?)^```$/gm)].map((m) => ({
    lang: m[1],
    body: m[2],
  }));
}

/** Shell words of one command line: '…' and "…" quoting, `$NAME` expanded from `vars` inside "…". */
function shellWords(line: string, vars: Readonly<Record<string, string>>): string[] {
  const words: string[] = [];
  for (const match of line.matchAll(/'([^']*)'|"([^"]*)"|(\S+)/g)) {
    if (match[1] !== undefined) words.push(match[1]);
    else if (match[2] !== undefined)
      words.push(match[2].replace(/\$(\w+)/g, (_, name: string) => vars[name] ?? ''));
    else words.push(match[3]);
  }
  return words;
}

/**
 * The README's worked example, run exactly as written: the profile it shows is the example file,
 * `npm run map` prints what the README shows, and the curl calls get the answers it shows.
 */
describe('README worked example: an Epic lab result to LOINC and UCUM', () => {
  const blocks = workedExampleBlocks();
  /** The blocks this spec runs: the profile, `npm run map` and its output, the curl calls and the answer. */
  const profileAt = blocks.findIndex((b) => b.lang === 'json' && b.body.includes('"steps"'));
  const mapAt = blocks.findIndex((b) => b.lang === 'bash' && b.body.trim().startsWith('npm run -s map -- '));
  const curlAt = blocks.findIndex((b) => b.lang === 'bash' && b.body.includes('curl '));
  let stack: TestStack;

  beforeAll(async () => {
    stack = await TestStack.create('worked_example');
    await stack.startBridge();
  });

  afterAll(async () => {
    await stack.close();
  });

  it('shows the example profile as it is in examples/mapping', () => {
    expect([profileAt, mapAt, curlAt].every((at) => at >= 0)).toBe(true);
    expect(blocks[mapAt + 1].lang).toBe('text');
    expect(blocks[curlAt + 1].lang).toBe('json');
    expect(JSON.parse(blocks[profileAt].body)).toEqual(
      JSON.parse(readFileSync(join(ROOT, 'examples/mapping/epic-lab-loinc.profile.json'), 'utf8')),
    );
  });

  it('npm run map prints what the README shows', () => {
    const command = blocks[mapAt].body.trim();
    expect(command).toMatch(/^npm run -s map -- /);
    const run = spawnSync('bash', ['-c', command], {
      cwd: ROOT,
      encoding: 'utf8',
      env: {
        ...process.env,
        PATH: `${join(ROOT, 'node_modules', '.bin')}${delimiter}${process.env.PATH ?? ''}`,
      },
      timeout: 60_000,
    });
    expect(run.stderr).toBe('');
    expect(run.status).toBe(0);
    expect(run.stdout.trimEnd()).toBe(blocks[mapAt + 1].body.trimEnd());
  });

  it('the curl calls store and activate the profile and dry-run it as the README shows', async () => {
    const vars: Record<string, string> = {};
    const answers: { status: number; body: unknown }[] = [];
    for (const line of blocks[curlAt].body.trim().split('\n')) {
      const assignment = /^(\w+)='([^']*)'$/.exec(line);
      if (assignment) {
        vars[assignment[1]] = assignment[2];
        continue;
      }
      const words = shellWords(line, vars);
      expect(words[0]).toBe('curl');
      let method = 'GET';
      let url = '';
      let body: Buffer | undefined;
      const headers: Record<string, string> = {};
      for (let i = 1; i < words.length; i++) {
        const word = words[i];
        if (word === '-s') continue;
        if (word === '-X') method = words[++i];
        else if (word === '-H') {
          const [name, ...value] = words[++i].split(':');
          headers[name.trim().toLowerCase()] = value.join(':').trim();
        } else if (word === '--data-binary') body = readFileSync(join(ROOT, words[++i].replace(/^@/, '')));
        else url = word;
      }
      const response = await fetch(url.replace('http://localhost:8080', stack.baseUrl), {
        method,
        headers,
        body,
      });
      answers.push({ status: response.status, body: await response.json() });
    }
    expect(answers.map((a) => a.status)).toEqual([201, 200]);
    expect(answers[0].body).toMatchObject({ id: 'epic-lab-loinc', version: 1, active: true });
    expect(answers[1].body).toMatchObject(JSON.parse(blocks[curlAt + 1].body) as Record<string, unknown>);
  });
});
