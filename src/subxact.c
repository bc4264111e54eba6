/*-------------------------------------------------------------------------
 *
 * subxact.c
 *	  Running a function in a subtransaction and judging its error.
 *
 * Used where a failure must not end the caller's transaction: the activity
 * touch under snapshot isolation (session.c) and the removal of the cleanup
 * job during DROP EXTENSION (schedule.c).
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "access/xact.h"
#include "utils/memutils.h"
#include "utils/resowner.h"

#include "sessmgr.h"

/*
 * Run fn(arg) in a subtransaction.  Returns NULL when it succeeded; when it
 * raised an error, rolls the subtransaction back and returns a copy of the
 * error for the caller to judge (rethrow, or report and go on).
 */
ErrorData *
SessmgrTryInSubtransaction(void (*fn) (void *arg), void *arg)
{
	MemoryContext oldcontext = CurrentMemoryContext;
	ResourceOwner oldowner = CurrentResourceOwner;
	ErrorData  *volatile edata = NULL;

	BeginInternalSubTransaction(NULL);
	MemoryContextSwitchTo(oldcontext);

	PG_TRY();
	{
		fn(arg);
		ReleaseCurrentSubTransaction();
		MemoryContextSwitchTo(oldcontext);
		CurrentResourceOwner = oldowner;
	}
	PG_CATCH();
	{
		MemoryContextSwitchTo(oldcontext);
		edata = CopyErrorData();
		FlushErrorState();
		RollbackAndReleaseCurrentSubTransaction();
		MemoryContextSwitchTo(oldcontext);
		CurrentResourceOwner = oldowner;
	}
	PG_END_TRY();

	return edata;
}
