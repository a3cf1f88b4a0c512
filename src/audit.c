/*-------------------------------------------------------------------------
 *
 * audit.c
 *		The audit log's row trigger: notify_audit_log_stamp().
 *
 * For every role but the log's owner, a new audit row gets its "at" and
 * "db_role" from the server (clock_timestamp(), session_user), whatever the
 * INSERT supplied, so a role granted INSERT cannot forge when or who.  The
 * owner's rows keep their values: notify's own functions run as the owner
 * and write the defaults, and a restore from a dump keeps what was dumped.
 *
 * It is C because notify_enqueue writes an audit row for every skipped or
 * deduplicated notification, inside the caller's transaction: a PL/pgSQL
 * trigger that reads pg_class per row cost more than the rest of such an
 * enqueue.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "access/htup_details.h"
#include "commands/trigger.h"
#include "executor/spi.h"
#include "fmgr.h"
#include "miscadmin.h"
#include "utils/builtins.h"
#include "utils/rel.h"
#include "utils/timestamp.h"

PG_FUNCTION_INFO_V1(notify_audit_log_stamp);

Datum
notify_audit_log_stamp(PG_FUNCTION_ARGS)
{
	TriggerData *trigdata = (TriggerData *) fcinfo->context;
	Relation	rel;
	TupleDesc	desc;
	int			cols[2];
	Datum		values[2];
	bool		nulls[2] = {false, false};
	NameData   *role;

	if (!CALLED_AS_TRIGGER(fcinfo) ||
		!TRIGGER_FIRED_BEFORE(trigdata->tg_event) ||
		!TRIGGER_FIRED_FOR_ROW(trigdata->tg_event) ||
		!TRIGGER_FIRED_BY_INSERT(trigdata->tg_event))
		ereport(ERROR,
				(errcode(ERRCODE_E_R_I_E_TRIGGER_PROTOCOL_VIOLATED),
				 errmsg("notify_audit_log_stamp() must be called as a BEFORE INSERT row trigger")));

	rel = trigdata->tg_relation;
	if (GetUserId() == rel->rd_rel->relowner)
		return PointerGetDatum(trigdata->tg_trigtuple);

	desc = RelationGetDescr(rel);
	role = (NameData *) palloc0(NAMEDATALEN);
	namestrcpy(role, GetUserNameFromId(GetSessionUserId(), false));
	cols[0] = SPI_fnumber(desc, "at");
	values[0] = TimestampTzGetDatum(GetCurrentTimestamp());
	cols[1] = SPI_fnumber(desc, "db_role");
	values[1] = NameGetDatum(role);
	if (cols[0] <= 0 || cols[1] <= 0)
		elog(ERROR, "notify_audit_log has no column \"at\" or \"db_role\"");
	return PointerGetDatum(heap_modify_tuple_by_cols(trigdata->tg_trigtuple, desc,
													 2, cols, values, nulls));
}
