import { Controller, Get, HttpCode, Inject, Param, Post, Query, Res, UseGuards } from '@nestjs/common';
import { InjectQueue } from '@nestjs/bullmq';
import { ApiBearerAuth, ApiOperation, ApiParam, ApiQuery, ApiResponse, ApiTags } from '@nestjs/swagger';
import { FhirRequestError, operationOutcome, outcomeIssue } from '@fhir-trail/fhir-mapping';
import { QUEUES, type ReplayJob, replayJobId } from '@fhir-trail/jobs';
import { STORE } from '@fhir-trail/runtime';
import type { DeadLetter, DeadLetterDetail, DeadLetterFilter, Store } from '@fhir-trail/store';
import type { Queue } from 'bullmq';
import type { FastifyReply } from 'fastify';
import { unavailableAs503 } from '../fhir/database-unavailable';
import { AdminKeyGuard } from './admin-key.guard';

const OUTCOME_SCHEMA = { type: 'object', description: 'FHIR R4 OperationOutcome' };
const LIST_LIMIT = 100;
const LIST_MAX = 1_000;
/** One replay-all call queues at most this many; call again for the rest (the replayed ones drop out). */
const REPLAY_MAX = 10_000;

const DEAD_LETTER_SCHEMA = {
  type: 'object',
  properties: {
    id: { type: 'string' },
    sourceId: { type: 'string' },
    inboxId: { type: 'string', nullable: true },
    entryIndex: { type: 'integer', nullable: true },
    reasonCode: {
      type: 'string',
      example: 'invalid-resource',
      description:
        'invalid-resource, mapping-failed, mapping-profile-unavailable, unparseable-notification, ' +
        'malformed-notification, or a fetch-back reason',
    },
    issueCodes: { type: 'array', items: { type: 'string' }, description: 'the outcome’s issue codes' },
    createdAt: { type: 'string', format: 'date-time' },
    status: { type: 'string', enum: ['open', 'replayed'] },
    mappingProfile: {
      type: 'string',
      nullable: true,
      description: '`{id}|{version}` that refused (or replayed) it',
    },
    replayable: { type: 'boolean', description: 'holds a resource a replay can map again' },
    replayCount: { type: 'integer' },
    replayRequestedAt: { type: 'string', format: 'date-time', nullable: true },
    lastReplayAt: { type: 'string', format: 'date-time', nullable: true },
    lastReplayOutcome: {
      type: 'object',
      nullable: true,
      description: 'OperationOutcome of the last failed replay',
    },
    replayedVersionId: { type: 'string', nullable: true },
    outcome: OUTCOME_SCHEMA,
  },
};

const FILTER_QUERIES = [
  { name: 'source', description: 'source id' },
  { name: 'reason', description: 'reason code, e.g. invalid-resource' },
  { name: 'issueCode', description: 'an OperationOutcome issue code among its issues, e.g. code-invalid' },
  { name: 'since', description: 'created at or after (ISO date-time)' },
  { name: 'until', description: 'created before (ISO date-time)' },
] as const;

/**
 * Dead letters: what could not be stored, with its OperationOutcome and input; replay through the
 * worker (queue `replay`) with the source's active mapping profile, each stored replay getting its own
 * Provenance. Every route needs the admin API key.
 */
@ApiTags('admin')
@ApiBearerAuth()
@ApiResponse({ status: 401, description: 'missing or wrong admin API key', schema: OUTCOME_SCHEMA })
@ApiResponse({ status: 503, description: 'database unavailable', schema: OUTCOME_SCHEMA })
@UseGuards(AdminKeyGuard)
@Controller('admin/dead-letters')
export class AdminDeadLettersController {
  constructor(
    @Inject(STORE) private readonly store: Store,
    @InjectQueue(QUEUES.replay) private readonly replays: Queue<ReplayJob>,
  ) {}

  @Get()
  @ApiOperation({ summary: 'List dead letters, oldest first, filtered (AND)' })
  @ApiQuery({ name: 'source', required: false, description: FILTER_QUERIES[0].description })
  @ApiQuery({ name: 'reason', required: false, description: FILTER_QUERIES[1].description })
  @ApiQuery({ name: 'issueCode', required: false, description: FILTER_QUERIES[2].description })
  @ApiQuery({ name: 'since', required: false, description: FILTER_QUERIES[3].description })
  @ApiQuery({ name: 'until', required: false, description: FILTER_QUERIES[4].description })
  @ApiQuery({ name: 'status', required: false, enum: ['open', 'replayed'] })
  @ApiQuery({ name: 'after', required: false, description: 'page: the `next` of the previous answer' })
  @ApiQuery({ name: 'limit', required: false, description: `default ${LIST_LIMIT}, at most ${LIST_MAX}` })
  @ApiResponse({
    status: 200,
    description: '{ deadLetters, next } — `next` is set when there may be more',
    schema: {
      type: 'object',
      properties: { deadLetters: { type: 'array', items: DEAD_LETTER_SCHEMA }, next: { type: 'string' } },
    },
  })
  @ApiResponse({ status: 400, description: 'a bad filter value', schema: OUTCOME_SCHEMA })
  async list(
    @Query() query: Record<string, unknown>,
    @Res({ passthrough: true }) reply: FastifyReply,
  ): Promise<{ deadLetters: ReturnType<typeof summaryView>[]; next?: string }> {
    const filter = filterOf(query, true);
    const limit = integer(query.limit, 'limit', LIST_LIMIT, LIST_MAX);
    const found = await unavailableAs503(() => this.store.deadLetters.list(filter, limit));
    void reply.header('cache-control', 'no-store');
    return {
      deadLetters: found.map(summaryView),
      ...(found.length === limit ? { next: found[found.length - 1].id } : {}),
    };
  }

  @Get(':id')
  @ApiOperation({
    summary: 'One dead letter: its OperationOutcome, the input resource, and the raw bytes',
    description:
      '`input` is the resource as resolved, before mapping (what a replay maps again); `raw` the bytes ' +
      'as received — the refused request, or the accepted notification it came from — as UTF-8 `text` ' +
      'or, if not UTF-8, `base64`.',
  })
  @ApiParam({ name: 'id', example: '42' })
  @ApiResponse({
    status: 200,
    description: 'the dead letter',
    schema: {
      type: 'object',
      properties: {
        ...DEAD_LETTER_SCHEMA.properties,
        input: { type: 'object', nullable: true },
        inputContext: { type: 'object', nullable: true },
        raw: {
          type: 'object',
          nullable: true,
          properties: { text: { type: 'string' }, base64: { type: 'string' } },
        },
      },
    },
  })
  @ApiResponse({ status: 404, description: 'no such dead letter', schema: OUTCOME_SCHEMA })
  async get(@Param('id') id: string, @Res({ passthrough: true }) reply: FastifyReply) {
    const found = await unavailableAs503(() => this.store.deadLetters.find(id));
    void reply.header('cache-control', 'no-store');
    return detailView(found ?? notFound());
  }

  @Post('$replay')
  @HttpCode(202)
  @ApiOperation({
    summary: 'Replay every open, replayable dead letter matching the filter',
    description:
      `Queues at most ${REPLAY_MAX} per call (oldest first). The worker maps each with its source's ` +
      'active profile: a valid result is stored with its own Provenance and the dead letter becomes ' +
      '`replayed`; an invalid one stays `open` with `lastReplayOutcome`. With no filter at all, every ' +
      'open replayable dead letter is replayed.',
  })
  @ApiQuery({ name: 'source', required: false, description: FILTER_QUERIES[0].description })
  @ApiQuery({ name: 'reason', required: false, description: FILTER_QUERIES[1].description })
  @ApiQuery({ name: 'issueCode', required: false, description: FILTER_QUERIES[2].description })
  @ApiQuery({ name: 'since', required: false, description: FILTER_QUERIES[3].description })
  @ApiQuery({ name: 'until', required: false, description: FILTER_QUERIES[4].description })
  @ApiResponse({
    status: 202,
    description: '{ queued, deadLetterIds }',
    schema: {
      type: 'object',
      properties: {
        queued: { type: 'integer' },
        deadLetterIds: { type: 'array', items: { type: 'string' } },
      },
    },
  })
  @ApiResponse({ status: 400, description: 'a bad filter value', schema: OUTCOME_SCHEMA })
  async replayAll(
    @Query() query: Record<string, unknown>,
  ): Promise<{ queued: number; deadLetterIds: string[] }> {
    const filter = filterOf(query, false);
    const ids = await unavailableAs503(() => this.store.deadLetters.replayableIds(filter, REPLAY_MAX));
    await this.enqueue(ids);
    return { queued: ids.length, deadLetterIds: [...ids] };
  }

  @Post(':id/$replay')
  @HttpCode(202)
  @ApiOperation({ summary: 'Replay one dead letter with its source’s active mapping profile' })
  @ApiParam({ name: 'id', example: '42' })
  @ApiResponse({ status: 202, description: '{ queued: 1, deadLetterIds: [id] }' })
  @ApiResponse({ status: 404, description: 'no such dead letter', schema: OUTCOME_SCHEMA })
  @ApiResponse({
    status: 409,
    description: 'already replayed, or holds no resource to replay (e.g. an unparseable notification)',
    schema: OUTCOME_SCHEMA,
  })
  async replayOne(@Param('id') id: string): Promise<{ queued: number; deadLetterIds: string[] }> {
    const found = (await unavailableAs503(() => this.store.deadLetters.find(id))) ?? notFound();
    if (found.status !== 'open' || !found.replayable || found.inboxId === null) {
      throw new FhirRequestError(
        409,
        operationOutcome([
          outcomeIssue({
            code: 'conflict',
            text:
              found.status !== 'open'
                ? 'this dead letter was already replayed'
                : `this dead letter holds no resource to replay (reason ${found.reasonCode}); the sender must send it again`,
          }),
        ]),
      );
    }
    await this.enqueue([found.id]);
    return { queued: 1, deadLetterIds: [found.id] };
  }

  private async enqueue(ids: readonly string[]): Promise<void> {
    if (ids.length === 0) return;
    await unavailableAs503(() => this.store.deadLetters.markReplayRequested(ids));
    await this.replays.addBulk(
      ids.map((deadLetterId) => ({
        name: 'replay',
        data: { deadLetterId },
        opts: {
          jobId: replayJobId(deadLetterId),
          attempts: 3,
          backoff: { type: 'exponential', delay: 1_000 },
          removeOnComplete: true,
          removeOnFail: true,
        },
      })),
    );
  }
}

function filterOf(query: Record<string, unknown>, withPaging: boolean): DeadLetterFilter {
  const text = (name: string, pattern: RegExp): string | undefined => {
    const value = query[name];
    if (value === undefined || value === '') return undefined;
    if (typeof value !== 'string' || !pattern.test(value)) badFilter(name, 'not a valid value');
    return value;
  };
  const time = (name: string): Date | undefined => {
    const value = text(name, /^\d{4}-\d{2}-\d{2}(T[0-9:.]+(Z|[+-]\d{2}:\d{2})?)?$/);
    if (value === undefined) return undefined;
    const date = new Date(value);
    if (Number.isNaN(date.getTime())) badFilter(name, 'not an ISO date-time');
    return date;
  };
  const status = text('status', /^(open|replayed)$/) as DeadLetterFilter['status'];
  return {
    sourceId: text('source', /^[A-Za-z0-9-]{1,64}$/),
    reasonCode: text('reason', /^[A-Za-z0-9-]{1,64}$/),
    issueCode: text('issueCode', /^[a-z-]{1,64}$/),
    since: time('since'),
    until: time('until'),
    ...(withPaging ? { status, afterId: text('after', /^[0-9]{1,18}$/) } : {}),
  };
}

function integer(value: unknown, name: string, fallback: number, max: number): number {
  if (value === undefined || value === '') return fallback;
  const number = Number(value);
  if (!Number.isInteger(number) || number < 1 || number > max) badFilter(name, `an integer from 1 to ${max}`);
  return number;
}

function badFilter(name: string, text: string): never {
  throw FhirRequestError.badRequest(outcomeIssue({ code: 'value', text, expression: name }));
}

function summaryView(letter: DeadLetter) {
  const issues = Array.isArray(letter.outcome.issue) ? (letter.outcome.issue as { code?: unknown }[]) : [];
  return {
    id: letter.id,
    sourceId: letter.sourceId,
    inboxId: letter.inboxId,
    entryIndex: letter.entryIndex,
    reasonCode: letter.reasonCode,
    issueCodes: [...new Set(issues.flatMap((i) => (typeof i.code === 'string' ? [i.code] : [])))],
    createdAt: letter.createdAt.toISOString(),
    status: letter.status,
    mappingProfile: letter.mappingProfile,
    replayable: letter.replayable,
    replayCount: letter.replayCount,
    replayRequestedAt: letter.replayRequestedAt?.toISOString() ?? null,
    lastReplayAt: letter.lastReplayAt?.toISOString() ?? null,
    lastReplayOutcome: letter.lastReplayOutcome,
    replayedVersionId: letter.replayedVersionId,
    outcome: letter.outcome,
  };
}

function detailView(letter: DeadLetterDetail) {
  let raw: { text: string } | { base64: string } | null = null;
  if (letter.raw) {
    const text = new TextDecoder('utf-8', { fatal: false }).decode(letter.raw);
    raw = Buffer.from(text, 'utf8').equals(letter.raw) ? { text } : { base64: letter.raw.toString('base64') };
  }
  return { ...summaryView(letter), input: letter.input, inputContext: letter.inputContext, raw };
}

function notFound(): never {
  throw new FhirRequestError(
    404,
    operationOutcome([outcomeIssue({ code: 'not-found', text: 'no dead letter with this id' })]),
  );
}
