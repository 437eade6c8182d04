import { Controller, Get, Inject, Query, UseGuards } from '@nestjs/common';
import { ApiBearerAuth, ApiOperation, ApiQuery, ApiResponse, ApiTags } from '@nestjs/swagger';
import { STORE } from '@fhir-trail/runtime';
import type { InboxStatus, Store, SubscriptionView } from '@fhir-trail/store';
import { AdminKeyGuard } from './admin-key.guard';

/** What an on-call operator asks first: is anything stuck, lost, refused or silent? */
export interface IntakeStatus {
  readonly inbox: Readonly<Record<InboxStatus, number>>;
  /** Open dead letters (replayed ones no longer count). */
  readonly deadLetters: number;
  readonly subscriptions: readonly SubscriptionView[];
  /** Subscriptions with an open alert (status error, silent past the heartbeat, gaps that could not be repaired). */
  readonly alerts: readonly { sourceId: string; subscription: string; alert: string; at: Date | null }[];
}

@ApiTags('admin')
@ApiBearerAuth()
@ApiResponse({ status: 401, description: 'missing or wrong admin API key (OperationOutcome)' })
@UseGuards(AdminKeyGuard)
@Controller('admin')
export class AdminStatusController {
  constructor(@Inject(STORE) private readonly store: Store) {}

  @Get('status')
  @ApiOperation({
    summary: 'Intake status: inbox by state, dead letters, every subscription and its alerts',
    description:
      'Alerts are raised when a sender reports status `error`, a `query-status` is not active, a subscription ' +
      'stays silent past its heartbeat, or missed events could not be recovered.',
  })
  @ApiQuery({ name: 'source', required: false, description: 'only this source' })
  @ApiResponse({ status: 200, description: '{ inbox, deadLetters, subscriptions, alerts }' })
  async status(@Query('source') source?: string): Promise<IntakeStatus> {
    const sourceId = typeof source === 'string' && source.length > 0 ? source : undefined;
    const [inbox, deadLetters, subscriptions] = await Promise.all([
      this.store.inbox.countByStatus(),
      this.store.deadLetters.count(sourceId),
      this.store.subscriptions.list({ sourceId }),
    ]);
    return {
      inbox,
      deadLetters,
      subscriptions,
      alerts: subscriptions
        .filter((s) => s.alert !== null)
        .map((s) => ({
          sourceId: s.sourceId,
          subscription: s.reference,
          alert: s.alert ?? '',
          at: s.alertAt,
        })),
    };
  }
}
