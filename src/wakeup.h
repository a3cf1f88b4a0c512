/*-------------------------------------------------------------------------
 *
 * wakeup.h
 *		Waking the delivery worker when a transaction that wrote to the
 *		outbox commits.
 *
 *-------------------------------------------------------------------------
 */
#ifndef NOTIFY_WAKEUP_H
#define NOTIFY_WAKEUP_H

extern void notify_wakeup_init(void);
extern void notify_wake_worker(int except);
extern void notify_wake_all_workers(void);
extern void notify_wake_at_commit(void);
extern void notify_channels_changed_at_commit(void);

#endif							/* NOTIFY_WAKEUP_H */
