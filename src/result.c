/*-------------------------------------------------------------------------
 *
 * result.c
 *	  Returning the single row of sessmgr's set-returning functions.
 *
 * issue() and validate() return at most one row.  They use materialize mode
 * with a result descriptor built once per backend, which is the cheapest way
 * to hand a row to a FunctionScan (it keeps the tuplestore we give it) and
 * avoids looking up the function's OUT parameters on every call.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "funcapi.h"
#include "miscadmin.h"
#include "utils/memutils.h"
#include "utils/tuplestore.h"

#include "sessmgr.h"

/* Build and bless a result descriptor in TopMemoryContext. */
TupleDesc
SessmgrResultDesc(int natts, const char *const *names, const Oid *types)
{
	MemoryContext oldcontext = MemoryContextSwitchTo(TopMemoryContext);
	TupleDesc	desc = CreateTemplateTupleDesc(natts);

	for (int i = 0; i < natts; i++)
		TupleDescInitEntry(desc, (AttrNumber) (i + 1), names[i], types[i], -1, 0);
	desc = BlessTupleDesc(desc);
	MemoryContextSwitchTo(oldcontext);
	return desc;
}

/*
 * Check that the caller accepts a materialized set and say we return one.
 * Until SessmgrReturnRow is called, the result is the empty set.
 */
void
SessmgrBeginResult(FunctionCallInfo fcinfo)
{
	ReturnSetInfo *rsinfo = (ReturnSetInfo *) fcinfo->resultinfo;

	if (rsinfo == NULL || !IsA(rsinfo, ReturnSetInfo) ||
		(rsinfo->allowedModes & SFRM_Materialize) == 0)
		ereport(ERROR,
				(errcode(ERRCODE_FEATURE_NOT_SUPPORTED),
				 errmsg("set-valued function called in context that cannot accept a set")));
	rsinfo->returnMode = SFRM_Materialize;
}

/* Make the function's result the one row given. */
void
SessmgrReturnRow(FunctionCallInfo fcinfo, TupleDesc desc, Datum *values, bool *nulls)
{
	ReturnSetInfo *rsinfo = (ReturnSetInfo *) fcinfo->resultinfo;
	MemoryContext oldcontext;
	Tuplestorestate *store;

	oldcontext = MemoryContextSwitchTo(rsinfo->econtext->ecxt_per_query_memory);
	store = tuplestore_begin_heap(false, false, work_mem);
	/* the executor frees a descriptor that is not reference-counted */
	rsinfo->setDesc = CreateTupleDescCopy(desc);
	rsinfo->setResult = store;
	MemoryContextSwitchTo(oldcontext);

	tuplestore_putvalues(store, rsinfo->setDesc, values, nulls);
}
