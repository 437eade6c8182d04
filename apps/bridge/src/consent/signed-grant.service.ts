import { createHash } from 'node:crypto';
import { Inject, Injectable, Logger } from '@nestjs/common';
import { InjectQueue } from '@nestjs/bullmq';
import type { Queue } from 'bullmq';
import { type TypedDataDomain, getAddress, verifyTypedData } from 'ethers';
import type { AppConfig } from '@fhir-trail/config';
import {
  ACT_CODE_SYSTEM,
  CONSENT_SCOPE_SYSTEM,
  FhirRequestError,
  PARTICIPATION_TYPE_SYSTEM,
  PURPOSES_OF_USE,
  PURPOSE_OF_USE_SYSTEM,
  R4_RESOURCE_TYPES,
  RESOURCE_TYPE_CLASS_SYSTEM,
  type IssueCode,
  isFhirId,
  operationOutcome,
  outcomeIssue,
  patientPseudonym,
} from '@fhir-trail/fhir-mapping';
import { type ConsentJob, QUEUES, consentJobId } from '@fhir-trail/jobs';
import {
  CONSENT_GRANT_TYPES,
  CONSENT_REVOKE_TYPES,
  type ConsentRegistryClient,
  LedgerError,
  type SignedRegistryCall,
} from '@fhir-trail/ledger';
import {
  APP_CONFIG,
  LEDGER,
  type LedgerConnection,
  STORE,
  recordConsent,
  recipientKeyOf,
} from '@fhir-trail/runtime';
import { PatientKeyDestroyedError, type Store, type StoredConsent } from '@fhir-trail/store';

const BYTES32 = /^0x[0-9a-fA-F]{64}$/;
const SIGNATURE = /^0x[0-9a-fA-F]{130}$/;
const UINT = /^(0|[1-9][0-9]{0,77})$/;
const MAX_UINT64 = (1n << 64n) - 1n;
const MAX_UINT256 = (1n << 256n) - 1n;
const KNOWN_PURPOSES = (1n << BigInt(PURPOSES_OF_USE.length)) - 1n;
const KNOWN_DATA_CLASSES = (1n << BigInt(R4_RESOURCE_TYPES.length)) - 1n;

export type SignedPrimaryType = 'ConsentGrant' | 'ConsentRevoke';

/** What a patient app needs to build the typed data of a grant or revocation for one pair. */
export interface SigningData {
  readonly domain: Omit<TypedDataDomain, 'chainId'> & { readonly chainId: string };
  readonly types: { readonly ConsentGrant: unknown; readonly ConsentRevoke: unknown };
  readonly patientKey: string;
  readonly recipientKey: string;
  /** The nonce the next signed grant or revocation of this patient must carry (decimal). */
  readonly nonce: string;
  /** Bit i of `purposes` = this list's i-th v3 PurposeOfUse code. */
  readonly purposeBits: readonly string[];
  /** Bit i of `dataClasses` = this list's i-th R4 resource type. */
  readonly dataClassBits: readonly string[];
}

export interface SignedGrantResult {
  readonly consent: StoredConsent;
  readonly txHash: string;
  readonly block: number;
}

export interface SignedMessage {
  readonly patientKey: string;
  readonly recipientKey: string;
  readonly purposes: bigint;
  readonly dataClasses: bigint;
  readonly validFrom: bigint;
  readonly validUntil: bigint;
  readonly nonce: bigint;
  readonly deadline: bigint;
}

/**
 * EIP-712 grants and revocations signed by a patient (or a delegate registered on the consent
 * registry), relayed by the bridge. Each is checked before anything is sent — the keys are this
 * patient's and this recipient's, the scope is one the bridge can read, the deadline has not passed,
 * the nonce is the patient's next one, the signature recovers to the patient's bound signer or a
 * delegate — then submitted with the registrar key (which holds RELAYER_ROLE), awaited to finality,
 * and recorded like any other Consent: a Consent resource synthesised from the grant (origin
 * `signed`, one per pair, so a revocation withdraws it), a `consent` ledger leaf, and the registry
 * mirror's pair confirmed at the finalised block.
 */
@Injectable()
export class SignedGrantService {
  private readonly logger = new Logger(SignedGrantService.name);

  constructor(
    @Inject(STORE) private readonly store: Store,
    @Inject(APP_CONFIG) private readonly config: AppConfig,
    @Inject(LEDGER) private readonly ledger: LedgerConnection,
    @InjectQueue(QUEUES.consent) private readonly queue: Queue<ConsentJob>,
  ) {}

  async signingData(sourceId: string, patient: unknown, recipient: unknown): Promise<SigningData> {
    const registry = this.registry();
    const patientRef = reference(patient, 'Patient', 'patient');
    const recipientOrg = reference(recipient, 'Organization', 'recipient');
    const keys = await this.keysOf(sourceId, patientRef, recipientOrg);
    const [domain, nonce] = await Promise.all([registry.domain(), registry.nonceOf(keys.patientKey)]);
    return {
      domain: { ...domain, chainId: String(domain.chainId) },
      types: {
        ConsentGrant: CONSENT_GRANT_TYPES['ConsentGrant'],
        ConsentRevoke: CONSENT_REVOKE_TYPES['ConsentRevoke'],
      },
      ...keys,
      nonce: nonce.toString(),
      purposeBits: PURPOSES_OF_USE,
      dataClassBits: R4_RESOURCE_TYPES,
    };
  }

  /** Binds the address that signs for a patient on the registry (the caller has checked who the patient is). */
  async bindSigner(
    sourceId: string,
    patient: unknown,
    signer: unknown,
  ): Promise<{ txHash: string; patientKey: string }> {
    const registry = this.registry();
    const patientRef = reference(patient, 'Patient', 'patient');
    if (typeof signer !== 'string' || !/^0x[0-9a-fA-F]{40}$/.test(signer)) {
      throw problem(400, 'invalid', 'signer must be an Ethereum address (0x and 40 hex digits)', 'signer');
    }
    const source = await this.store.sources.findById(sourceId);
    if (!source?.enabled) {
      throw problem(400, 'invalid', 'source must name a registered source', 'source');
    }
    const { patientKey } = await this.keysOf(sourceId, patientRef, undefined);
    const txHash = await registry.bindPatientSigner(patientKey, getAddress(signer.toLowerCase()));
    return { txHash, patientKey };
  }

  async relay(sourceId: string, body: unknown): Promise<SignedGrantResult> {
    const registry = this.registry();
    if (typeof body !== 'object' || body === null || Array.isArray(body)) {
      throw problem(400, 'structure', 'the body must be a JSON object with the signed typed data');
    }
    const input = body as Record<string, unknown>;
    const patientRef = reference(input['patient'], 'Patient', 'patient');
    const recipientOrg = reference(input['recipient'], 'Organization', 'recipient');
    const primaryType = input['primaryType'];
    if (primaryType !== 'ConsentGrant' && primaryType !== 'ConsentRevoke') {
      throw problem(400, 'value', 'primaryType must be ConsentGrant or ConsentRevoke', 'primaryType');
    }
    const message = readMessage(input['message'], primaryType);
    const signature = input['signature'];
    if (typeof signature !== 'string' || !SIGNATURE.test(signature)) {
      throw problem(
        400,
        'invalid',
        'signature must be a 65-byte hex string (0x and 130 hex digits)',
        'signature',
      );
    }

    const keys = await this.keysOf(sourceId, patientRef, recipientOrg);
    if (message.patientKey.toLowerCase() !== keys.patientKey) {
      throw problem(
        422,
        'business-rule',
        "message.patientKey is not this patient's registry key",
        'message.patientKey',
      );
    }
    if (message.recipientKey.toLowerCase() !== keys.recipientKey) {
      throw problem(
        422,
        'business-rule',
        "message.recipientKey is not this recipient's registry key",
        'message.recipientKey',
      );
    }
    if (primaryType === 'ConsentGrant') checkScope(message);
    const now = BigInt(Math.floor(Date.now() / 1000));
    if (message.deadline <= now) {
      throw problem(
        422,
        'business-rule',
        'the signature has expired (message.deadline has passed)',
        'message.deadline',
      );
    }
    const expected = await registry.nonceOf(keys.patientKey);
    if (message.nonce !== expected) {
      throw problem(
        409,
        'conflict',
        `message.nonce is not the patient's next nonce (${expected}): a replay or out of order`,
        'message.nonce',
      );
    }
    const domain = await registry.domain();
    const types = primaryType === 'ConsentGrant' ? CONSENT_GRANT_TYPES : CONSENT_REVOKE_TYPES;
    const typed =
      primaryType === 'ConsentGrant'
        ? message
        : {
            patientKey: message.patientKey,
            recipientKey: message.recipientKey,
            nonce: message.nonce,
            deadline: message.deadline,
          };
    let signer: string;
    try {
      signer = verifyTypedData(domain, types, typed, signature);
    } catch {
      throw problem(400, 'invalid', 'the signature does not recover to an address', 'signature');
    }
    const role = await registry.signerRole(keys.patientKey, signer);
    if (!role) {
      throw problem(
        403,
        'forbidden',
        "the signature is not by the patient's bound signer or one of their delegates",
        'signature',
      );
    }

    const call: SignedRegistryCall =
      primaryType === 'ConsentGrant'
        ? {
            kind: 'grant',
            scope: {
              patientKey: message.patientKey,
              recipientKey: message.recipientKey,
              purposes: message.purposes,
              dataClasses: message.dataClasses,
              validFrom: message.validFrom,
              validUntil: message.validUntil,
            },
            nonce: message.nonce,
            deadline: message.deadline,
            signature,
          }
        : {
            kind: 'revoke',
            ...keysOnly(message),
            nonce: message.nonce,
            deadline: message.deadline,
            signature,
          };
    let txHash: string;
    try {
      txHash = await registry.relaySigned(call);
    } catch (error) {
      throw refusalOf(error);
    }
    const block = await registry.finalisedBlock();
    const onChain = await registry.readGrant(keys.patientKey, keys.recipientKey, block);

    const resource = signedConsent(
      consentIdOf(keys.patientKey, keys.recipientKey),
      patientRef,
      recipientOrg,
      primaryType === 'ConsentGrant' ? message : undefined,
    );
    const recorded = await this.store.transaction((trx) =>
      recordConsent(this.store, trx, {
        sourceId,
        resource,
        origin: 'signed',
        actor: `eip712:${role}`,
        masterKey: this.config.ledger.masterKey,
      }),
    );
    if (!recorded.ok) throw new FhirRequestError(recorded.status, recorded.outcome);
    await this.store.consents.setConfirmed({ sourceId, patientRef, recipientOrg }, onChain, block, txHash);
    // If the patient's other consents imply more for this pair, the registry sync brings the chain in line.
    await this.queue
      .add(
        'sync',
        { consentRowId: recorded.consent.id },
        { jobId: consentJobId(recorded.consent.id, recorded.consent.version) },
      )
      .catch(() => undefined);
    this.logger.log({ msg: 'signed consent relayed', source: sourceId, kind: call.kind, txHash, block });
    return { consent: recorded.consent, txHash, block };
  }

  private registry(): ConsentRegistryClient {
    const registry = this.ledger.consentRegistry;
    if (!registry) {
      throw problem(503, 'not-supported', 'no consent registry is configured (LEDGER_CONSENT_PRIVATE_KEY)');
    }
    return registry;
  }

  private async keysOf(
    sourceId: string,
    patientRef: string,
    recipientOrg: string | undefined,
  ): Promise<{ patientKey: string; recipientKey: string }> {
    let key: Buffer;
    try {
      key = await this.store.patientKeys.getOrCreate(sourceId, patientRef);
    } catch (error) {
      if (!(error instanceof PatientKeyDestroyedError)) throw error;
      throw problem(
        422,
        'business-rule',
        'the patient was erased; nothing can be granted for them',
        'patient',
      );
    }
    return {
      patientKey: patientPseudonym(key, patientRef).toLowerCase(),
      recipientKey: recipientOrg
        ? `0x${recipientKeyOf(this.config.ledger.masterKey, sourceId, recipientOrg).toString('hex')}`
        : '',
    };
  }
}

function keysOnly(message: SignedMessage): { patientKey: string; recipientKey: string } {
  return { patientKey: message.patientKey, recipientKey: message.recipientKey };
}

function problem(status: number, code: IssueCode, text: string, expression?: string): FhirRequestError {
  return new FhirRequestError(
    status,
    operationOutcome([outcomeIssue({ code, text, ...(expression ? { expression } : {}) })]),
  );
}

function reference(value: unknown, type: 'Patient' | 'Organization', path: string): string {
  const id =
    typeof value === 'string' && value.startsWith(`${type}/`) ? value.slice(type.length + 1) : undefined;
  if (id === undefined || !isFhirId(id)) {
    throw problem(400, 'invalid', `${path} must be a ${type}/{id} reference`, path);
  }
  return value as string;
}

function readMessage(value: unknown, primaryType: SignedPrimaryType): SignedMessage {
  if (typeof value !== 'object' || value === null || Array.isArray(value)) {
    throw problem(400, 'structure', 'message must be the signed typed-data message', 'message');
  }
  const m = value as Record<string, unknown>;
  const key = (name: string): string => {
    const v = m[name];
    if (typeof v !== 'string' || !BYTES32.test(v)) {
      throw problem(400, 'invalid', `message.${name} must be a bytes32 hex string`, `message.${name}`);
    }
    return v;
  };
  const uint = (name: string, max: bigint, optional = false): bigint => {
    const v = m[name];
    if (v === undefined && optional) return 0n;
    const text = typeof v === 'number' && Number.isSafeInteger(v) ? String(v) : v;
    if (typeof text !== 'string' || !UINT.test(text) || BigInt(text) > max) {
      throw problem(
        400,
        'invalid',
        `message.${name} must be an unsigned integer (decimal string or number)`,
        `message.${name}`,
      );
    }
    return BigInt(text);
  };
  const grant = primaryType === 'ConsentGrant';
  return {
    patientKey: key('patientKey'),
    recipientKey: key('recipientKey'),
    purposes: grant ? uint('purposes', MAX_UINT256) : 0n,
    dataClasses: grant ? uint('dataClasses', MAX_UINT256) : 0n,
    validFrom: grant ? uint('validFrom', MAX_UINT64) : 0n,
    validUntil: grant ? uint('validUntil', MAX_UINT64) : 0n,
    nonce: uint('nonce', MAX_UINT256),
    deadline: uint('deadline', MAX_UINT256),
  };
}

/** A grant the bridge can turn into a Consent policy: known bits only, a non-empty scope, a valid period. */
function checkScope(message: SignedMessage): void {
  if (message.purposes === 0n || (message.purposes & ~KNOWN_PURPOSES) !== 0n) {
    throw problem(
      422,
      'business-rule',
      'message.purposes must set at least one bit, and only bits of known purposes of use',
      'message.purposes',
    );
  }
  if (message.dataClasses === 0n || (message.dataClasses & ~KNOWN_DATA_CLASSES) !== 0n) {
    throw problem(
      422,
      'business-rule',
      'message.dataClasses must set at least one bit, and only bits of R4 resource types',
      'message.dataClasses',
    );
  }
  if (message.validUntil !== 0n && message.validUntil <= message.validFrom) {
    throw problem(
      422,
      'business-rule',
      'message.validUntil must be after message.validFrom (or 0)',
      'message.validUntil',
    );
  }
}

function refusalOf(error: unknown): Error {
  if (!(error instanceof LedgerError)) return error instanceof Error ? error : new Error(String(error));
  const revert = (error.details as { revert?: string } | undefined)?.revert ?? '';
  if (revert.startsWith('SignatureExpired'))
    return problem(422, 'business-rule', 'the signature has expired', 'message.deadline');
  if (revert.startsWith('InvalidNonce')) {
    return problem(
      409,
      'conflict',
      "message.nonce is not the patient's next nonce: a replay or out of order",
      'message.nonce',
    );
  }
  if (revert.startsWith('UnauthorizedSigner') || revert.startsWith('InvalidSignature')) {
    return problem(403, 'forbidden', 'the consent registry refused the signature', 'signature');
  }
  if (revert.startsWith('NoActiveGrant')) {
    return problem(409, 'conflict', 'there is no active grant to revoke for this pair', 'primaryType');
  }
  if (revert) return problem(422, 'business-rule', `the consent registry refused: ${revert}`);
  return problem(503, 'transient', 'the consent registry could not be reached; nothing was recorded');
}

/** One Consent id per (patient, recipient) pair, so a signed revocation withdraws the signed grant. */
function consentIdOf(patientKey: string, recipientKey: string): string {
  return `eip712-${createHash('sha256').update(`${patientKey}|${recipientKey}`).digest('hex').slice(0, 40)}`;
}

/**
 * The FHIR Consent a signed grant amounts to (the shape the interpreter reads): an opt-out root
 * with one permit for the recipient organisation, the granted purposes and resource types, and the
 * grant's period (the end given as its last millisecond, so the registry scope round-trips exactly).
 * A revocation is the same Consent, inactive.
 */
export function signedConsent(
  id: string,
  patientRef: string,
  recipientOrg: string,
  grant: SignedMessage | undefined,
): Record<string, unknown> {
  const bits = <T>(bitmap: bigint, names: readonly T[]): T[] =>
    names.filter((_, i) => ((bitmap >> BigInt(i)) & 1n) === 1n);
  const period =
    grant && (grant.validFrom !== 0n || grant.validUntil !== 0n)
      ? {
          period: {
            ...(grant.validFrom !== 0n
              ? { start: new Date(Number(grant.validFrom) * 1000).toISOString() }
              : {}),
            ...(grant.validUntil !== 0n
              ? { end: new Date(Number(grant.validUntil) * 1000 - 1).toISOString() }
              : {}),
          },
        }
      : {};
  return {
    resourceType: 'Consent',
    id,
    status: grant ? 'active' : 'inactive',
    scope: { coding: [{ system: CONSENT_SCOPE_SYSTEM, code: 'patient-privacy' }] },
    category: [{ coding: [{ system: 'http://loinc.org', code: '59284-0' }] }],
    patient: { reference: patientRef },
    dateTime: new Date().toISOString(),
    policyRule: { coding: [{ system: ACT_CODE_SYSTEM, code: 'OPTOUT' }] },
    provision: {
      provision: [
        {
          type: 'permit',
          actor: [
            {
              role: { coding: [{ system: PARTICIPATION_TYPE_SYSTEM, code: 'PRCP' }] },
              reference: { reference: recipientOrg },
            },
          ],
          ...(grant
            ? {
                purpose: bits(grant.purposes, PURPOSES_OF_USE).map((code) => ({
                  system: PURPOSE_OF_USE_SYSTEM,
                  code,
                })),
                class: bits(grant.dataClasses, R4_RESOURCE_TYPES).map((code) => ({
                  system: RESOURCE_TYPE_CLASS_SYSTEM,
                  code,
                })),
              }
            : {}),
          ...period,
        },
      ],
    },
  };
}
