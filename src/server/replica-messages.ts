import type { LeaseManager, Notifications } from '../cluster/cluster.types.ts';
import type { SetpointFanout } from '../control/setpoint-fanout.ts';
import type { Controller } from '../control/controller.ts';

/** What the messages of other replicas act on in this one. */
export interface ReplicaMessageTargets {
  readonly replicaId: string;
  readonly notifications: Notifications;
  readonly controller: Pick<Controller, 'refresh' | 'marketChanged' | 'pokeOwned'>;
  readonly leases: Pick<LeaseManager, 'claimSoon'>;
  readonly fanout: Pick<SetpointFanout, 'onMessage' | 'onResync'>;
}

/**
 * Routes the messages of the other replicas: a change to a site → its owner reads what
 * changed again and plans it (this replica's own changes took the local fast path already); market data → the
 * sites following market signals; released leases → claim now; setpoint events → the
 * local watchers (relay traffic is the relay channel's own subscription). After the listening connection was
 * re-established, messages may have been missed: every site is read whole again and every owned one planned. Returns the unsubscribe.
 */
export function routeReplicaMessages(targets: ReplicaMessageTargets): () => void {
  const { replicaId, controller } = targets;
  const offMessages = targets.notifications.subscribe((message) => {
    switch (message.k) {
      case 'change':
        if (message.from !== replicaId) controller.refresh(message.site, message.reason);
        return;
      case 'market':
        if (message.from !== replicaId) controller.marketChanged();
        return;
      case 'leases':
        if (message.from !== replicaId) targets.leases.claimSoon();
        return;
      case 'events':
        targets.fanout.onMessage(message);
        return;
      default:
      // Agent streams and relayed setpoints: the relay channel and agent streams listen for their own.
    }
  });
  const offResync = targets.notifications.onResync(() => {
    controller.pokeOwned();
    targets.fanout.onResync();
  });
  return () => {
    offMessages();
    offResync();
  };
}
