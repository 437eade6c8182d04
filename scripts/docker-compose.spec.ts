import { existsSync, readFileSync } from 'node:fs';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { Wallet, computeAddress, encodeRlp, getAddress } from 'ethers';
import { configSchema } from '@fhir-trail/config';
import {
  DEV_ANCHORER_ADDRESS,
  besuNetwork,
  decodeQbftExtraData,
  encodeQbftExtraData,
  validatorIp,
  writeBesuNetwork,
} from './besu-network';
import { YamlSubsetError, type YamlValue, parseYamlSubset } from './yaml-subset';

const DOCKER = join(__dirname, '..', 'docker');
const NETWORK = join(DOCKER, 'besu', 'network');
const VALIDATORS = [1, 2, 3, 4] as const;

type Mapping = { [key: string]: YamlValue };

function mapping(value: YamlValue | undefined, what: string): Mapping {
  if (typeof value !== 'object' || value === null || Array.isArray(value))
    throw new Error(`${what} is not a mapping`);
  return value;
}

function text(value: YamlValue | undefined): string {
  if (typeof value !== 'string') throw new Error(`expected a string, got ${JSON.stringify(value)}`);
  return value;
}

function strings(value: YamlValue | undefined): string[] {
  return Array.isArray(value) ? value.map(String) : [];
}

/** The `--name=value` flags of a Besu command. */
function flags(command: readonly string[]): Map<string, string> {
  return new Map(command.map((arg) => arg.replace(/^--/, '').split('=') as [string, string]));
}

function ipv4InSubnet(ip: string, subnet: string): boolean {
  const [base, bits] = subnet.split('/');
  const toNumber = (a: string): number => a.split('.').reduce((n, part) => n * 256 + Number(part), 0);
  const mask = Number(bits) === 0 ? 0 : (0xffffffff << (32 - Number(bits))) >>> 0;
  return (toNumber(ip) & mask) >>> 0 === (toNumber(base) & mask) >>> 0;
}

/** Keys the compose specification allows on a service (the ones a typo would most likely miss). */
const SERVICE_KEYS = new Set([
  'build',
  'command',
  'depends_on',
  'entrypoint',
  'environment',
  'healthcheck',
  'image',
  'init',
  'networks',
  'ports',
  'restart',
  'stop_signal',
  'user',
  'volumes',
]);
const TOP_LEVEL_KEYS = new Set(['name', 'services', 'volumes', 'networks']);

describe('docker/compose.yaml', () => {
  const compose = mapping(parseYamlSubset(readFileSync(join(DOCKER, 'compose.yaml'), 'utf8')), 'compose');
  const services = mapping(compose['services'], 'services');
  const volumes = mapping(compose['volumes'], 'volumes');
  const networks = mapping(compose['networks'], 'networks');
  const service = (name: string): Mapping => mapping(services[name], name);

  it('has only compose-spec keys, and every reference resolves: services, named volumes, networks, bind mounts, ports', () => {
    expect(Object.keys(compose).filter((k) => !k.startsWith('x-') && !TOP_LEVEL_KEYS.has(k))).toEqual([]);
    for (const [name, value] of Object.entries(services)) {
      const s = mapping(value, name);
      expect({ name, unknown: Object.keys(s).filter((k) => !SERVICE_KEYS.has(k)) }).toEqual({
        name,
        unknown: [],
      });
      expect(typeof s['image'] === 'string' || typeof s['build'] === 'object').toBe(true);
      for (const dependency of Object.keys(mapping(s['depends_on'] ?? {}, 'depends_on'))) {
        expect({ name, dependency, exists: dependency in services }).toEqual({
          name,
          dependency,
          exists: true,
        });
      }
      for (const volume of strings(s['volumes'])) {
        const source = volume.split(':')[0];
        if (source.startsWith('.') || source.startsWith('/')) {
          expect({ volume, exists: existsSync(resolve(DOCKER, source)) }).toEqual({ volume, exists: true });
        } else {
          expect({ volume, declared: source in volumes }).toEqual({ volume, declared: true });
        }
      }
      const joined = Array.isArray(s['networks'])
        ? strings(s['networks'])
        : Object.keys(mapping(s['networks'] ?? {}, 'networks'));
      for (const network of joined)
        expect({ name, network, declared: network in networks }).toEqual({ name, network, declared: true });
      for (const port of strings(s['ports']))
        expect(port).toMatch(/^(\d{1,3}(\.\d{1,3}){3}:)?\d{1,5}:\d{1,5}$/);
      const health = s['healthcheck'];
      if (health !== undefined)
        expect(['CMD', 'CMD-SHELL']).toContain(strings(mapping(health, 'healthcheck')['test'])[0]);
      for (const [key, env] of Object.entries(mapping(s['environment'] ?? {}, 'environment'))) {
        expect({ key, type: typeof env }).toEqual({ key, type: 'string' });
      }
    }
  });

  it('gives the apps only settings the config schema knows, and points them at besu-1 with finality depth 0', () => {
    for (const app of ['bridge', 'worker']) {
      const environment = mapping(service(app)['environment'], 'environment');
      expect(Object.keys(environment).filter((k) => !(k in configSchema.shape))).toEqual([]);
      expect(environment['LEDGER_RPC_URL']).toBe('http://besu-1:8545');
      expect(environment['LEDGER_FINALITY_DEPTH']).toBe('0');
      expect(strings(service(app)['networks'])).toEqual(['default', 'besu']);
      expect(Object.keys(mapping(service(app)['depends_on'], 'depends_on'))).toContain('besu-1');
    }
  });

  it('runs 4 Besu QBFT validators on fixed addresses of the besu network, each with its own key and data', () => {
    const ipam = mapping(mapping(networks['besu'], 'besu')['ipam'], 'ipam');
    const cidr = text(mapping((ipam['config'] as YamlValue[])[0], 'ipam config')['subnet']);
    const staticNodes = JSON.parse(readFileSync(join(NETWORK, 'static-nodes.json'), 'utf8')) as string[];
    const addresses = new Set<string>();
    for (const n of VALIDATORS) {
      const node = service(`besu-${n}`);
      expect(text(node['image'])).toMatch(/^hyperledger\/besu:\d+\.\d+\.\d+$/);
      const f = flags(strings(node['command']));
      const ip = text(mapping(mapping(node['networks'], 'networks')['besu'], 'besu')['ipv4_address']);
      expect(ipv4InSubnet(ip, cidr)).toBe(true);
      expect(addresses.has(ip)).toBe(false);
      addresses.add(ip);
      expect(ip).toBe(validatorIp(n));
      expect(f.get('p2p-host')).toBe(ip);
      expect(staticNodes[n - 1]).toMatch(new RegExp(`@${ip.replace(/\./g, '\\.')}:${f.get('p2p-port')}$`));
      expect(f.get('node-private-key-file')).toBe(`/config/validator-${n}/key`);
      expect(f.get('min-gas-price')).toBe('0');
      expect(f.get('genesis-file')).toBe('/config/genesis.json');
      expect(f.get('rpc-http-api')?.split(',')).toEqual(expect.arrayContaining(['ETH', 'NET', 'QBFT']));
      expect(f.has('permissions-nodes-config-file-enabled')).toBe(true);
      expect(f.has('permissions-accounts-config-file-enabled')).toBe(true);
      expect(strings(node['volumes'])).toEqual(['./besu/network:/config:ro', `besu-${n}-data:/data`]);
    }
    expect(Object.keys(services).filter((s) => s.startsWith('besu-'))).toEqual(
      VALIDATORS.map((n) => `besu-${n}`),
    );
  });
});

describe('the Besu QBFT network files (docker/besu/network)', () => {
  const genesis = JSON.parse(readFileSync(join(NETWORK, 'genesis.json'), 'utf8')) as {
    config: Record<string, unknown> & { chainId: number; qbft: Record<string, number> };
    alloc: Record<string, unknown>;
    extraData: string;
  };
  const keyOf = (n: number): string => readFileSync(join(NETWORK, `validator-${n}`, 'key'), 'utf8').trim();

  it('genesis extraData decodes (RLP) to the 4 validator addresses derived from the generated keys, in order', () => {
    const derived = VALIDATORS.map((n) => new Wallet(keyOf(n)).address);
    expect(new Set(derived).size).toBe(4);
    expect(decodeQbftExtraData(genesis.extraData)).toEqual(derived);
    for (const n of VALIDATORS) {
      const publicKey = readFileSync(join(NETWORK, `validator-${n}`, 'key.pub'), 'utf8').trim();
      expect(computeAddress(`0x04${publicKey.slice(2)}`)).toBe(derived[n - 1]);
      expect(readFileSync(join(NETWORK, `validator-${n}`, 'address'), 'utf8').trim()).toBe(derived[n - 1]);
    }
  });

  it('is a free-gas QBFT genesis with the forks the anchor contract needs, funding and allowing the dev anchorer', () => {
    expect(genesis.config).toMatchObject({
      zeroBaseFee: true,
      londonBlock: 0,
      shanghaiTime: 0,
      cancunTime: 0,
    });
    expect(genesis.config.qbft).toMatchObject({ blockperiodseconds: expect.any(Number) as number });
    const compose = readFileSync(join(DOCKER, 'compose.yaml'), 'utf8');
    const key = /LEDGER_PRIVATE_KEY: '(0x[0-9a-f]{64})'/.exec(compose)?.[1] as string;
    const anchorer = new Wallet(key).address;
    expect(anchorer).toBe(getAddress(DEV_ANCHORER_ADDRESS));
    expect(Object.keys(genesis.alloc)).toContain(anchorer.slice(2).toLowerCase());
    const permissions = readFileSync(join(NETWORK, 'permissions_config.toml'), 'utf8');
    expect(permissions).toContain(`accounts-allowlist=["${anchorer}"]`);
    const staticNodes = JSON.parse(readFileSync(join(NETWORK, 'static-nodes.json'), 'utf8')) as string[];
    for (const enode of staticNodes) expect(permissions).toContain(`"${enode}"`);
  });

  it('the generator writes fresh keys whose addresses the extraData names; a foreign extraData is refused', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'fhir-trail-besu-'));
    try {
      const network = besuNetwork({
        chainId: 4242,
        accounts: ['0x000000000000000000000000000000000000dEaD'],
      });
      await writeBesuNetwork(dir, network);
      const written = JSON.parse(await readFile(join(dir, 'genesis.json'), 'utf8')) as typeof genesis;
      const keys = await Promise.all(
        VALIDATORS.map((n) => readFile(join(dir, `validator-${n}`, 'key'), 'utf8')),
      );
      expect(decodeQbftExtraData(written.extraData)).toEqual(keys.map((k) => new Wallet(k.trim()).address));
      expect(written.config.chainId).toBe(4242);
      expect(keys.map((k) => k.trim())).not.toContain(keyOf(1)); // fresh, not the committed ones
      const fixed = besuNetwork({ privateKeys: VALIDATORS.map((n) => keyOf(n)) });
      expect((JSON.parse(fixed.files['genesis.json']) as typeof genesis).extraData).toBe(genesis.extraData);
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
    const address = Wallet.createRandom().address;
    expect(decodeQbftExtraData(encodeQbftExtraData([address]))).toEqual([address]);
    expect(() => decodeQbftExtraData(encodeRlp([`0x${'00'.repeat(32)}`, [address], [], '0x01', []]))).toThrow(
      'round 0',
    );
    expect(() => decodeQbftExtraData(encodeRlp([`0x${'00'.repeat(32)}`, [address]]))).toThrow('5 items');
  });
});

describe('the YAML subset reader', () => {
  it('reads anchors, merge keys, flow and block sequences, quoting and comments', () => {
    const parsed = parseYamlSubset(
      [
        'x-base: &base',
        '  image: a:1 # comment',
        '  retries: 3',
        'services:',
        '  one:',
        '    <<: *base',
        '    retries: 4',
        "    test: ['CMD', \"it's\", 'a''b']",
        '    list:',
        '      - subnet: 10.0.0.0/24',
        '        gateway: 10.0.0.1',
        '      - ./x:/y:ro',
        '    empty:',
      ].join('\n'),
    );
    expect(parsed).toEqual({
      'x-base': { image: 'a:1', retries: 3 },
      services: {
        one: {
          image: 'a:1',
          retries: 4,
          test: ['CMD', "it's", "a'b"],
          list: [{ subnet: '10.0.0.0/24', gateway: '10.0.0.1' }, './x:/y:ro'],
          empty: null,
        },
      },
    });
  });

  it.each([
    ['a:\n\tb: 1', 'tabs'],
    ['a: |\n  text', 'block scalars'],
    ['a: {b: 1}', 'flow mappings'],
    ['a: 1\na: 2', 'duplicate key'],
    ['a: *missing', 'unknown alias'],
    ["a: 'open", 'unterminated quote'],
  ])('refuses what it does not read: %j', (source, problem) => {
    expect(() => parseYamlSubset(source)).toThrow(YamlSubsetError);
    expect(() => parseYamlSubset(source)).toThrow(new RegExp(problem.split(' ')[0]));
  });
});
