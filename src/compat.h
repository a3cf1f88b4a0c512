/*-------------------------------------------------------------------------
 *
 * compat.h
 *		Differences between the PostgreSQL major versions notify builds
 *		against (13 to 18), kept in one place.
 *
 * Code elsewhere calls the names defined here and never tests
 * PG_VERSION_NUM itself.
 *
 *-------------------------------------------------------------------------
 */
#ifndef NOTIFY_COMPAT_H
#define NOTIFY_COMPAT_H

#include "postgres.h"

#include "storage/latch.h"
#include "storage/proc.h"
#include "utils/guc.h"

#if PG_VERSION_NUM < 130000
#error "notify requires PostgreSQL 13 or later"
#endif

/* Shared memory must be requested from shmem_request_hook since 15. */
#if PG_VERSION_NUM >= 150000
#define NOTIFY_HAVE_SHMEM_REQUEST_HOOK 1
#endif

/* MarkGUCPrefixReserved replaced EmitWarningsOnPlaceholders in 15. */
#if PG_VERSION_NUM < 150000
#define MarkGUCPrefixReserved(prefix) EmitWarningsOnPlaceholders(prefix)
#endif

/* CreateWaitEventSet takes a ResourceOwner since 17. */
#if PG_VERSION_NUM >= 170000
#define notify_create_wait_event_set(nevents) \
	CreateWaitEventSet(NULL, (nevents))
#else
#define notify_create_wait_event_set(nevents) \
	CreateWaitEventSet(TopMemoryContext, (nevents))
#endif

/* PGPROC numbers became ProcNumber in 17. */
#if PG_VERSION_NUM >= 170000
typedef ProcNumber NotifyProcNumber;
#define notify_my_proc_number() (MyProcNumber)
#else
typedef int NotifyProcNumber;
#define notify_my_proc_number() (MyProc->pgprocno)
#endif
#define notify_proc_latch(procno) (&GetPGProcByNumber(procno)->procLatch)

/* ProcessNotifyInterrupt grew a "flush" argument in 15. */
#if PG_VERSION_NUM >= 150000
#define notify_process_notify_interrupt() ProcessNotifyInterrupt(false)
#else
#define notify_process_notify_interrupt() ProcessNotifyInterrupt()
#endif

/* index_insert grew an "indexUnchanged" hint in 14. */
#if PG_VERSION_NUM >= 140000
#define notify_index_insert(irel, values, isnull, tid, heaprel, check, info) \
	index_insert((irel), (values), (isnull), (tid), (heaprel), (check), false, (info))
#else
#define notify_index_insert(irel, values, isnull, tid, heaprel, check, info) \
	index_insert((irel), (values), (isnull), (tid), (heaprel), (check), (info))
#endif

#endif							/* NOTIFY_COMPAT_H */
