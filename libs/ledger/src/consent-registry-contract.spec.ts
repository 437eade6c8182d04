import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { Contract, Wallet, isError, type Log, type TypedDataDomain } from 'ethers';
import {
  CONSENT_REGISTRY_ARTIFACT,
  CONSENT_REGISTRY_ROLES,
  consentRegistryDomain,
  consentRegistryInterface,
  deployConsentRegistry,
  signConsentGrant,
  signConsentRevoke,
  type ConsentGrantScope,
} from './consent-registry-contract';
import { compileLedgerContract, formatContractArtifact } from './contract-compiler';
import { type TestChain, send, startTestChain, testHash } from './testing/test-chain.fixture';

const ARTIFACT_FILE = join(__dirname, '..', 'contracts', 'artifacts', 'FhirTrailConsentRegistry.json');

// If this fails, the committed artifact is stale: run `npx tsx scripts/build-contracts.ts`.
describe('FhirTrailConsentRegistry artifact', () => {
  it('equals a fresh compile of the Solidity source, byte for byte', async () => {
    const fresh = await compileLedgerContract('FhirTrailConsentRegistry');
    expect(fresh.solcVersion).toMatch(/^0\.8\.37\+/);
    expect(CONSENT_REGISTRY_ARTIFACT.abi).toEqual(fresh.abi);
    expect(CONSENT_REGISTRY_ARTIFACT.deployedBytecode).toBe(fresh.deployedBytecode);
    expect(readFileSync(ARTIFACT_FILE, 'utf8')).toBe(formatContractArtifact(fresh));
  }, 60_000);
});

/** The custom error a reverted call carries (decoded from its revert data). */
async function revertOf(call: Promise<unknown>): Promise<{ name: string; args: unknown[] }> {
  try {
    await call;
  } catch (error) {
    if (isError(error, 'CALL_EXCEPTION') && typeof error.data === 'string') {
      const parsed = consentRegistryInterface.parseError(error.data);
      if (parsed) return { name: parsed.name, args: [...parsed.args] as unknown[] };
    }
    throw error;
  }
  throw new Error('the call did not revert');
}

function attempt(contract: Contract, method: string, ...args: unknown[]): Promise<unknown> {
  return contract.getFunction(method)(...args) as Promise<unknown>;
}

async function read(contract: Contract, method: string, ...args: unknown[]): Promise<unknown> {
  return (await contract.getFunction(method).staticCall(...args)) as unknown;
}

const TREAT = 0;
const HRESCH = 2;
const OBSERVATION = 5;
const CONDITION = 7;
const bit = (i: number): bigint => 1n << BigInt(i);

describe('FhirTrailConsentRegistry on anvil', () => {
  let t: TestChain;
  let address: string;
  let asRegistrar: Contract;
  let asRelayer: Contract;
  let asOutsider: Contract;
  let domain: TypedDataDomain;
  const patient = Wallet.createRandom();
  const delegate = Wallet.createRandom();
  const stranger = Wallet.createRandom();
  const patientKey = testHash('patient pseudonym 1');
  const recipientA = testHash('recipient org A');
  const recipientB = testHash('recipient org B');
  let now: bigint;

  const scope = (overrides: Partial<ConsentGrantScope> = {}): ConsentGrantScope => ({
    patientKey,
    recipientKey: recipientA,
    purposes: bit(TREAT),
    dataClasses: bit(OBSERVATION) | bit(CONDITION),
    validFrom: now - 60n,
    validUntil: now + 3600n,
    ...overrides,
  });
  const consented = (recipient: string, purpose: number, dataClass: number, at: bigint): Promise<unknown> =>
    read(asRegistrar, 'isConsented', patientKey, recipient, purpose, dataClass, at);
  const eventsOf = (logs: readonly Log[]): string[] =>
    logs.map((l) => consentRegistryInterface.parseLog(l)?.name ?? '?');

  beforeAll(async () => {
    t = await startTestChain();
    // admin deploys and is registrar; the "anchorer" dev account relays signed grants.
    const deployment = await deployConsentRegistry(t.admin, {
      admin: t.admin.address,
      registrar: t.admin.address,
      relayer: t.anchorer.address,
    });
    address = deployment.address;
    asRegistrar = new Contract(address, CONSENT_REGISTRY_ARTIFACT.abi, t.admin);
    asRelayer = new Contract(address, CONSENT_REGISTRY_ARTIFACT.abi, t.anchorer);
    asOutsider = new Contract(address, CONSENT_REGISTRY_ARTIFACT.abi, t.outsider);
    domain = consentRegistryDomain((await t.provider.getNetwork()).chainId, address);
    now = BigInt((await t.provider.getBlock('latest'))?.timestamp ?? 0);
    await send(asRegistrar, 'bindPatientSigner', patientKey, patient.address);
  }, 60_000);

  afterAll(async () => {
    await t.close();
  });

  it('holds the roles given at deployment and the EIP-712 domain ethers computes', async () => {
    expect(await read(asRegistrar, 'hasRole', CONSENT_REGISTRY_ROLES.REGISTRAR_ROLE, t.admin.address)).toBe(
      true,
    );
    expect(await read(asRegistrar, 'hasRole', CONSENT_REGISTRY_ROLES.RELAYER_ROLE, t.anchorer.address)).toBe(
      true,
    );
    expect(await read(asRegistrar, 'hasRole', CONSENT_REGISTRY_ROLES.RELAYER_ROLE, t.outsider.address)).toBe(
      false,
    );
    const { TypedDataEncoder } = await import('ethers');
    expect(await read(asRegistrar, 'domainSeparator')).toBe(TypedDataEncoder.hashDomain(domain));
  });

  it('grant: the registrar records a pair; isConsented follows purpose, data class and period', async () => {
    const receipt = await send(asRegistrar, 'grant', scope());
    expect(eventsOf(receipt.logs)).toEqual(['ConsentGranted']);
    const event = consentRegistryInterface.parseLog(receipt.logs[0]);
    expect(event?.args['patientKey']).toBe(patientKey);
    expect(event?.args['recipientKey']).toBe(recipientA);
    expect(event?.args['grantedBy']).toBe(t.admin.address);

    expect(await consented(recipientA, TREAT, OBSERVATION, now)).toBe(true);
    expect(await consented(recipientA, TREAT, CONDITION, now)).toBe(true);
    expect(await consented(recipientA, HRESCH, OBSERVATION, now)).toBe(false);
    expect(await consented(recipientA, TREAT, 6, now)).toBe(false);
    expect(await consented(recipientA, TREAT, OBSERVATION, now + 3600n)).toBe(false);
    expect(await consented(recipientA, TREAT, OBSERVATION, now - 61n)).toBe(false);
    expect(await consented(recipientB, TREAT, OBSERVATION, now)).toBe(false);
  });

  it('revoke: the grant stops; a second revoke is NoActiveGrant', async () => {
    await send(asRegistrar, 'grant', scope({ recipientKey: recipientB }));
    const receipt = await send(asRegistrar, 'revoke', patientKey, recipientB);
    expect(eventsOf(receipt.logs)).toEqual(['ConsentRevoked']);
    expect(await consented(recipientB, TREAT, OBSERVATION, now)).toBe(false);
    expect(await consented(recipientA, TREAT, OBSERVATION, now)).toBe(true);
    expect(await revertOf(attempt(asRegistrar, 'revoke', patientKey, recipientB))).toEqual({
      name: 'NoActiveGrant',
      args: [patientKey, recipientB],
    });
  });

  it('signed grant: the patient signs, the relayer submits, the nonce advances; a replay is InvalidNonce', async () => {
    const s = scope({ recipientKey: recipientB, purposes: bit(HRESCH) });
    const deadline = now + 600n;
    const signature = await signConsentGrant(patient, domain, s, 0n, deadline);
    const receipt = await send(asRelayer, 'grantWithSignature', s, 0n, deadline, signature);
    const event = consentRegistryInterface.parseLog(receipt.logs[0]);
    expect(event?.name).toBe('ConsentGranted');
    expect(event?.args['grantedBy']).toBe(patient.address);
    expect(await read(asRegistrar, 'nonces', patientKey)).toBe(1n);
    expect(await consented(recipientB, HRESCH, OBSERVATION, now)).toBe(true);

    expect(await revertOf(attempt(asRelayer, 'grantWithSignature', s, 0n, deadline, signature))).toEqual({
      name: 'InvalidNonce',
      args: [1n, 0n],
    });
  });

  it('a registered delegate may sign; a stranger is UnauthorizedSigner; garbage is InvalidSignature', async () => {
    await send(asRegistrar, 'setDelegate', patientKey, delegate.address, true);
    const s = scope({ recipientKey: recipientB, purposes: bit(TREAT) });
    const deadline = now + 600n;

    const byStranger = await signConsentGrant(stranger, domain, s, 1n, deadline);
    expect(await revertOf(attempt(asRelayer, 'grantWithSignature', s, 1n, deadline, byStranger))).toEqual({
      name: 'UnauthorizedSigner',
      args: [stranger.address],
    });
    // A signature by the patient over a different scope recovers to someone else.
    const tampered = await signConsentGrant(patient, domain, { ...s, purposes: bit(HRESCH) }, 1n, deadline);
    expect((await revertOf(attempt(asRelayer, 'grantWithSignature', s, 1n, deadline, tampered))).name).toBe(
      'UnauthorizedSigner',
    );
    expect(
      await revertOf(attempt(asRelayer, 'grantWithSignature', s, 1n, deadline, `0x${'11'.repeat(65)}`)),
    ).toEqual({ name: 'InvalidSignature', args: [] });
    // None of the failures consumed the nonce.
    const byDelegate = await signConsentGrant(delegate, domain, s, 1n, deadline);
    await send(asRelayer, 'grantWithSignature', s, 1n, deadline, byDelegate);
    expect(await consented(recipientB, TREAT, OBSERVATION, now)).toBe(true);
  });

  it('an expired signature is SignatureExpired', async () => {
    const s = scope();
    const deadline = now - 1n;
    const signature = await signConsentGrant(patient, domain, s, 2n, deadline);
    const revert = await revertOf(attempt(asRelayer, 'grantWithSignature', s, 2n, deadline, signature));
    expect(revert.name).toBe('SignatureExpired');
    expect(revert.args[0]).toBe(deadline);
  });

  it('a signed revocation ends the grant and advances the nonce', async () => {
    const deadline = now + 600n;
    const signature = await signConsentRevoke(
      patient,
      domain,
      { patientKey, recipientKey: recipientB },
      2n,
      deadline,
    );
    const receipt = await send(
      asRelayer,
      'revokeWithSignature',
      patientKey,
      recipientB,
      2n,
      deadline,
      signature,
    );
    expect(consentRegistryInterface.parseLog(receipt.logs[0])?.args['revokedBy']).toBe(patient.address);
    expect(await consented(recipientB, TREAT, OBSERVATION, now)).toBe(false);
    expect(await read(asRegistrar, 'nonces', patientKey)).toBe(3n);
  });

  it('wrong role: only the registrar grants, only a relayer submits signatures, only patient or registrar revokes', async () => {
    const unauthorised = { name: 'AccessControlUnauthorizedAccount' };
    expect(await revertOf(attempt(asOutsider, 'grant', scope()))).toMatchObject({
      ...unauthorised,
      args: [t.outsider.address, CONSENT_REGISTRY_ROLES.REGISTRAR_ROLE],
    });
    const signature = await signConsentGrant(patient, domain, scope(), 3n, now + 600n);
    expect(
      await revertOf(attempt(asRegistrar, 'grantWithSignature', scope(), 3n, now + 600n, signature)),
    ).toMatchObject({ ...unauthorised, args: [t.admin.address, CONSENT_REGISTRY_ROLES.RELAYER_ROLE] });
    expect(await revertOf(attempt(asOutsider, 'revoke', patientKey, recipientA))).toEqual({
      name: 'NotPatientOrRegistrar',
      args: [t.outsider.address],
    });
    expect(await revertOf(attempt(asOutsider, 'setDelegate', patientKey, t.outsider.address, true))).toEqual({
      name: 'NotPatientOrRegistrar',
      args: [t.outsider.address],
    });
  });

  it('refuses empty scopes, zero keys and inverted periods', async () => {
    expect((await revertOf(attempt(asRegistrar, 'grant', scope({ purposes: 0n })))).name).toBe('EmptyScope');
    expect(
      (await revertOf(attempt(asRegistrar, 'grant', scope({ recipientKey: `0x${'00'.repeat(32)}` })))).name,
    ).toBe('ZeroKey');
    expect(await revertOf(attempt(asRegistrar, 'grant', scope({ validFrom: 10n, validUntil: 5n })))).toEqual({
      name: 'InvalidPeriod',
      args: [10n, 5n],
    });
  });

  it('a paused registry refuses grants (EnforcedPause)', async () => {
    await send(asRegistrar, 'pause');
    expect((await revertOf(attempt(asRegistrar, 'grant', scope()))).name).toBe('EnforcedPause');
    await send(asRegistrar, 'unpause');
  });
});
